-- (lib/dead_letter.lua is prepended.)
-- Takes the next message of the queues a worker consumes and records it as
-- unacked in the same atomic step, so neither a worker crash nor a Redis
-- restart between the pop and the bookkeeping can lose it (kombu's own
-- BRPOP-then-HSET can).
-- The lists of a paused queue are skipped.
-- First it drops the unacked entries of the deliveries the worker acked since its last
-- call (kombu's ack, carried here instead of a command of its own; removing an entry
-- twice, or one already gone, is harmless).
-- KEYS: unacked hash, unacked index zset, dead-letter list, then n ready lists
--       (one per queue), n paused flags (one per queue), then the queues' priority
--       lists in pop order (level-major: each level, each queue in turn)
-- ARGV: n, take_signal (1: also take one ready signal of the queue served),
--       now (unix seconds, the worker's clock, as kombu's visibility sweep uses),
--       dead letters kept, then n flags (1: record as unacked; 0: a no-ack queue),
--       then the delivery tags acked (any number)
-- Returns {queue index (1-based), message, ''} for a message;
--         {queue index, false, reason} for an item moved to the dead letters;
--         false when every list is empty (their ready signals are then stale: dropped).
local n = tonumber(ARGV[1])
for i = 5 + n, #ARGV do
  redis.call('ZREM', KEYS[2], ARGV[i])
  redis.call('HDEL', KEYS[1], ARGV[i])
end
local first_list = 4 + 2 * n
local paused = {}
for q = 1, n do
  paused[q] = redis.call('EXISTS', KEYS[3 + n + q]) == 1
end
for i = first_list, #KEYS do
  local q = (i - first_list) % n + 1
  local item = not paused[q] and redis.call('RPOP', KEYS[i])
  if item then
    if ARGV[2] == '1' then
      redis.call('RPOP', KEYS[3 + q])
    end
    local ok, message = pcall(cjson.decode, item)
    local props = ok and type(message) == 'table' and message['properties']
    local info = type(props) == 'table' and props['delivery_info']
    local tag = type(props) == 'table' and props['delivery_tag']
    if type(info) ~= 'table' or type(tag) ~= 'string' then
      local reason = ok and 'not a kombu message' or 'not JSON'
      dead_letter(KEYS[3], ARGV[4], item, reason)
      return {q, false, reason}
    end
    if ARGV[4 + q] == '1' then
      -- kombu's own unacked entry: [message, exchange, routing key]; the message
      -- is copied verbatim (re-encoding could turn an empty list into {}).
      redis.call('ZADD', KEYS[2], ARGV[3], tag)
      redis.call('HSET', KEYS[1], tag, '[' .. item .. ',' .. cjson.encode(info['exchange'] or '')
                 .. ',' .. cjson.encode(info['routing_key'] or '') .. ']')
    end
    return {q, item, ''}
  end
end
for i = 4, 3 + n do
  redis.call('DEL', KEYS[i])
end
return false
