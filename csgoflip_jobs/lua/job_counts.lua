-- Counts one queue's jobs per state in one atomic snapshot.
-- KEYS: the queue's priority lists, delayed zset, active set, completed zset,
--       failed zset, kombu's unacked hash
-- ARGV: queue name, job key prefix
-- Returns {waiting, delayed, active, completed, failed}.
local levels = #KEYS - 5
local waiting = 0
for i = 1, levels do
  waiting = waiting + redis.call('LLEN', KEYS[i])
end
-- A message a worker has taken but not started (its prefetch buffer) is in no
-- list and not active: it is still waiting. Without it the counts could read
-- "nothing waiting, nothing active" while jobs sit in a worker. Entries are
-- kombu's [message, exchange, routing key]; the routing key is the queue.
local suffix = ',' .. cjson.encode(ARGV[1]) .. ']'
local seen = {}
for _, raw in ipairs(redis.call('HVALS', KEYS[levels + 5])) do
  if string.sub(raw, -#suffix) == suffix then
    local ok, entry = pcall(cjson.decode, raw)
    local message = ok and type(entry) == 'table' and entry[1]
    local headers = type(message) == 'table' and message['headers']
    local id = type(headers) == 'table' and headers['id']
    if type(id) == 'string' and not seen[id]
        and redis.call('HGET', ARGV[2] .. id, 'state') == 'waiting' then
      seen[id] = true
      waiting = waiting + 1
    end
  end
end
return {
  waiting,
  redis.call('ZCARD', KEYS[levels + 1]),
  redis.call('SCARD', KEYS[levels + 2]),
  redis.call('ZCARD', KEYS[levels + 3]),
  redis.call('ZCARD', KEYS[levels + 4]),
}
