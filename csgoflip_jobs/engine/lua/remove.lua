-- (lib/events.lua, lib/jobs.lua and lib/messages.lua are prepended.)
-- Removes a job that is not running: waiting (its message is taken off its list),
-- delayed, completed or failed, with its result and logs. A removed job never runs:
-- a delivery of it already in a worker's hands finds no record and is skipped.
-- KEYS: job hash, delayed zset, completed zset, failed zset, job logs list, events,
--       then the queue's priority lists
-- ARGV: job id, events kept, Celery result key prefix
-- Returns 1 removed, 0 unknown, -1 running (refused).
local job, id = KEYS[1], ARGV[1]
local state, message, list = unpack(redis.call('HMGET', job, 'state', 'msg', 'msg_list'))
if not state then
  return 0
end
if state == 'active' then
  return -1
end
if state == 'waiting' then
  take_message(list, message, id, {unpack(KEYS, 7)})
elseif state == 'delayed' then
  redis.call('ZREM', KEYS[2], id)
else
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZREM', KEYS[4], id)
end
redis.call('DEL', result_key_of(ARGV[3], job, id), job, KEYS[5])
emit(KEYS[6], ARGV[2], 'removed', id, 'prev', state)
return 1
