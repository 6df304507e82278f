-- (lib/events.lua is prepended.)
-- Stores a new job's record and its message, or the message of a job's next try:
-- on its queue's list (waiting) or in the delayed set (delayed), with its events.
-- KEYS: job hash, target list, delayed zset, wake list, active set, ready list, events
-- ARGV: 1 payload (the message), 2 delay ms, 3 is_retry (1/0), 4 job id,
--       5 the message's delivery tag, 6 events kept, 7 Celery's task-sent event message
--       ('' for none), 8 k, the number of pub/sub channels it goes to, then those k
--       channels, then field/value pairs for the job hash
-- Returns 1 when stored; 0 when a new job's id already exists (dedupe), or when the
-- job of a retry is gone (removed meanwhile): nothing is stored then, and no
-- task-sent event goes out for a job that was not sent.
local job, list, delayed, wake, active, ready, events =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local payload, delay, retry, id = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1', ARGV[4]
local maxlen = ARGV[6]
local channels = tonumber(ARGV[8])
local first_field = 9 + channels
local exists = redis.call('EXISTS', job) == 1
if exists ~= retry then
  return 0
end
local now = now_ms()
if retry then
  -- A later try (or a deferred one) of a job a worker is giving back.
  redis.call('SREM', active, id)
else
  redis.call('HSET', job, 'timestamp', now)
end
if #ARGV >= first_field then
  redis.call('HSET', job, unpack(ARGV, first_field))
end
-- The message is kept with the job while it waits, so it can be removed, promoted
-- or re-prioritised by its exact bytes; START drops it.
redis.call('HSET', job, 'msg', payload, 'msg_list', list, 'tag', ARGV[5])
if not retry then
  emit(events, maxlen, 'added', id, 'name', redis.call('HGET', job, 'name'))
end
if delay > 0 then
  redis.call('HSET', job, 'state', 'delayed', 'due', now + delay)
  redis.call('ZADD', delayed, now + delay, id)
  redis.call('LPUSH', wake, '1')
  redis.call('LTRIM', wake, 0, 0)
  emit(events, maxlen, 'delayed', id, 'delay', now + delay)
else
  redis.call('HSET', job, 'state', 'waiting')
  redis.call('HDEL', job, 'due')
  redis.call('LPUSH', list, payload)
  redis.call('LPUSH', ready, '1')
  emit(events, maxlen, 'waiting', id)
end
for i = 9, 8 + channels do
  redis.call('PUBLISH', ARGV[i], ARGV[7])
end
return 1
