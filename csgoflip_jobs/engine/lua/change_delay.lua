-- (lib/events.lua is prepended.)
-- Makes a delayed job due `delay` ms from now.
-- KEYS: job hash, delayed zset, wake list, events
-- ARGV: job id, delay ms, events kept
-- Returns 1 changed, 0 when the job is not delayed (or unknown).
if redis.call('HGET', KEYS[1], 'state') ~= 'delayed' then
  return 0
end
local due = now_ms() + tonumber(ARGV[2])
redis.call('ZADD', KEYS[2], due, ARGV[1])
redis.call('HSET', KEYS[1], 'due', due)
redis.call('LPUSH', KEYS[3], '1')
redis.call('LTRIM', KEYS[3], 0, 0)
emit(KEYS[4], ARGV[3], 'delayed', ARGV[1], 'delay', due)
return 1
