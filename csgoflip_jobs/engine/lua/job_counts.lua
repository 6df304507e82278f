-- Counts one queue's jobs per state in one atomic snapshot.
-- KEYS: the queue's priority lists, delayed zset, active set, completed zset,
--       failed zset, kombu's unacked hash
-- ARGV: queue name, job key prefix, the message header holding the try number
-- Returns {waiting, delayed, active, completed, failed}.
local levels = #KEYS - 5
local waiting = 0
for i = 1, levels do
  waiting = waiting + redis.call('LLEN', KEYS[i])
end
-- A message a worker has taken but not started (its prefetch buffer) is in no
-- list and not active: it is still waiting. Without it the counts could read
-- "nothing waiting, nothing active" while jobs sit in a worker. Entries are
-- kombu's [message, exchange, routing key]; the routing key is the queue. An
-- entry counts when its job still waits for that very try: the delivery of an
-- earlier try, held until its ack while the next try is already queued, does not.
-- (A job deferred with no delay keeps its try number, so for that moment it can
-- count twice.)
local quoted = cjson.encode(ARGV[1])
local seen = {}
for _, raw in ipairs(redis.call('HVALS', KEYS[levels + 5])) do
  -- A plain substring test first: other queues' entries are mostly not decoded.
  if string.find(raw, quoted, 1, true) then
    local ok, entry = pcall(cjson.decode, raw)
    local message = ok and type(entry) == 'table' and entry[3] == ARGV[1] and entry[1]
    local headers = type(message) == 'table' and message['headers']
    local id = type(headers) == 'table' and headers['id']
    if type(id) == 'string' and not seen[id] then
      local job = headers[ARGV[3]]
      local try = type(job) == 'table' and tonumber(job['attempt']) or 1
      local state, current = unpack(redis.call('HMGET', ARGV[2] .. id, 'state', 'attempt'))
      if state == 'waiting' and (tonumber(current) or 1) == try then
        seen[id] = true
        waiting = waiting + 1
      end
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
