-- KEYS: delayed zset, wake list, ready list
-- ARGV: job key prefix, batch size
-- Moves every due job's message onto its list; returns {moved, ms until the next is due or -1}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local job = ARGV[1] .. id
  local found = redis.call('HMGET', job, 'msg', 'msg_list')
  if found[1] then
    redis.call('LPUSH', found[2], found[1])
    redis.call('LPUSH', KEYS[3], '1')
    redis.call('HDEL', job, 'msg', 'msg_list', 'due')
    redis.call('HSET', job, 'state', 'waiting')
  end
  redis.call('ZREM', KEYS[1], id)
end
redis.call('DEL', KEYS[2])
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if nxt[2] then
  return {#ids, math.max(0, tonumber(nxt[2]) - now)}
end
return {#ids, -1}
