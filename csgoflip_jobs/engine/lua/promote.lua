-- (lib/events.lua is prepended.)
-- Moves every due delayed job of a queue onto its list.
-- KEYS: delayed zset, wake list, ready list, events
-- ARGV: the queue's job key prefix, batch size, events kept
-- Returns {moved, ms until the next is due or -1}.
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local job = ARGV[1] .. id
  local state, message, list = unpack(redis.call('HMGET', job, 'state', 'msg', 'msg_list'))
  if state == 'delayed' and message then
    redis.call('LPUSH', list, message)
    redis.call('LPUSH', KEYS[3], '1')
    redis.call('HDEL', job, 'due')
    redis.call('HSET', job, 'state', 'waiting')
    emit(KEYS[4], ARGV[3], 'waiting', id, 'prev', 'delayed')
  end
  redis.call('ZREM', KEYS[1], id)
end
redis.call('DEL', KEYS[2])
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if nxt[2] then
  return {#ids, math.max(0, tonumber(nxt[2]) - now)}
end
return {#ids, -1}
