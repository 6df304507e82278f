-- KEYS: job hash, active set
-- ARGV: job id, attempt (1-based), task name, queue
-- Returns 1 to run the job, 0 when this delivery is stale: the job already
-- finished, a later try of it is already scheduled, or its record is gone
-- (every enqueue writes one; it goes when retention trims the finished job, or
-- when the job is removed).
local state, attempt = unpack(redis.call('HMGET', KEYS[1], 'state', 'attempt'))
if not state then
  return 0
end
if state == 'completed' or state == 'failed' then
  return 0
end
if attempt and tonumber(attempt) > tonumber(ARGV[2]) then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'state', 'active', 'processed_on', now, 'attempt', ARGV[2],
           'name', ARGV[3], 'queue', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
