-- KEYS: job hash, target list, delayed zset, wake list, active set, ready list
-- ARGV: payload, delay ms, is_retry (1/0), job id, then field/value pairs for the job hash
-- Returns 1 when queued, 0 when a job with this id already exists (dedupe).
local job, list, delayed, wake, active, ready = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local payload, delay, retry, id = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1', ARGV[4]
if not retry and redis.call('EXISTS', job) == 1 then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not retry then
  redis.call('HSET', job, 'timestamp', now)
else
  -- A later try (or a deferred one) of a job a worker is giving back.
  redis.call('SREM', active, id)
end
if #ARGV >= 5 then
  redis.call('HSET', job, unpack(ARGV, 5))
end
if delay > 0 then
  redis.call('HSET', job, 'state', 'delayed', 'msg', payload, 'msg_list', list,
             'due', now + delay)
  redis.call('ZADD', delayed, now + delay, id)
  redis.call('LPUSH', wake, '1')
  redis.call('LTRIM', wake, 0, 0)
else
  redis.call('HSET', job, 'state', 'waiting')
  redis.call('LPUSH', list, payload)
  redis.call('LPUSH', ready, '1')
end
return 1
