-- (lib/dead_letter.lua, lib/events.lua, lib/jobs.lua, lib/start_try.lua and
-- lib/unacked.lua are prepended.)
-- Takes the next message of the queues a worker consumes and records it as
-- unacked in the same atomic step, so neither a worker crash nor a Redis
-- restart between the pop and the bookkeeping can lose it (kombu's own
-- BRPOP-then-HSET can).
-- The lists of a paused queue are skipped.
-- First it drops the unacked entries of the deliveries the worker acked since its last
-- call (kombu's ack, carried here instead of a command of its own; removing an entry
-- twice, or one already gone, is harmless).
-- With `start` 1 (a worker that runs each message at once, in the process that takes
-- it) it also marks the message's try started, as START would (start_try), and
-- returns the verdict; a message Celery would hold back (an eta) is not started here.
-- KEYS: unacked hash, unacked index zset, dead-letter list, then n ready lists, n
--       paused flags, n active sets and n event streams (one each per queue), then the
--       queues' priority lists in pop order (level-major: each level, each queue in turn)
-- ARGV: 1 n, 2 take_signal (1: also take one ready signal of the queue served),
--       3 now (unix seconds, the worker's clock, as kombu's visibility sweep uses),
--       4 dead letters kept, 5 start (1/0), 6 run token, 7 stalls allowed, 8 events
--       kept, then n flags (1: record as unacked; 0: a no-ack queue), then the
--       n queues' job key prefixes, then the delivery tags acked (any number)
-- Returns {queue index (1-based), message, '', verdict} for a message (verdict: -1
--         when not started here, else start_try's);
--         {queue index, false, reason} for an item moved to the dead letters;
--         false when every list is empty (their ready signals are then stale: dropped).
local n = tonumber(ARGV[1])
local first_flag = 9
for i = first_flag + 2 * n, #ARGV do
  drop_unacked(KEYS[1], KEYS[2], ARGV[i])
end
local first_list = 4 + 4 * n
local paused = {}
for q = 1, n do
  paused[q] = redis.call('EXISTS', KEYS[3 + n + q]) == 1
end

local function start(q, message, tag, info)
  local headers = message['headers']
  if ARGV[5] ~= '1' or type(headers) ~= 'table' or type(headers['id']) ~= 'string'
      or type(headers['task']) ~= 'string' or type(headers['eta']) == 'string' then
    return -1
  end
  local job = headers['bullmq']
  local attempt = type(job) == 'table' and tonumber(job['attempt']) or 1
  local id = job_id_of(headers)
  local job_key = ARGV[first_flag - 1 + n + q] .. id
  return start_try(job_key, KEYS[3 + 2 * n + q], KEYS[3 + 3 * n + q], KEYS[3 + n + q], id,
                   attempt, headers['task'], info['routing_key'] or '', tag, ARGV[6],
                   ARGV[7], ARGV[8])
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
    local verdict = -1
    if ARGV[first_flag - 1 + q] == '1' then
      -- kombu's own unacked entry: [message, exchange, routing key]; the message
      -- is copied verbatim (re-encoding could turn an empty list into {}).
      redis.call('ZADD', KEYS[2], ARGV[3], tag)
      redis.call('HSET', KEYS[1], tag, '[' .. item .. ',' .. cjson.encode(info['exchange'] or '')
                 .. ',' .. cjson.encode(info['routing_key'] or '') .. ']')
      verdict = start(q, message, tag, info)
    end
    return {q, item, '', verdict}
  end
end
for i = 4, 3 + n do
  redis.call('DEL', KEYS[i])
end
return false
