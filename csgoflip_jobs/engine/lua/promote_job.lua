-- (lib/events.lua is prepended.)
-- Moves one delayed job onto its list now.
-- KEYS: job hash, delayed zset, ready list, events
-- ARGV: job id, events kept
-- Returns 1 promoted, 0 when the job is not delayed (or unknown).
local state, message, list = unpack(redis.call('HMGET', KEYS[1], 'state', 'msg', 'msg_list'))
if state ~= 'delayed' or not message then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('LPUSH', list, message)
redis.call('LPUSH', KEYS[3], '1')
redis.call('HDEL', KEYS[1], 'due')
redis.call('HSET', KEYS[1], 'state', 'waiting')
emit(KEYS[4], ARGV[2], 'waiting', ARGV[1], 'prev', 'delayed')
return 1
