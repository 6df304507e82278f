-- (lib/events.lua is prepended.)
-- Stores a new job's record and its message, or the message of a job's next try:
-- on its queue's list (waiting) or in the delayed set (delayed), with its events.
-- KEYS: job hash, target list, delayed zset, wake list, active set, ready list, events,
--       completed zset, failed zset, job logs list
-- ARGV: 1 payload (the message), 2 delay ms, 3 kind, 4 job id,
--       5 the message's delivery tag, 6 events kept, 7 Celery's task-sent event message
--       ('' for none), 8 k, the number of pub/sub channels it goes to, then those k
--       channels, then field/value pairs for the job hash
-- Kinds: 'retry' (the next try of the job, or a deferred try: the job must exist),
-- 'own_id' (a job added with its own id: refused while that id exists), 'rerun' (the
-- running job sending its own id again, as Celery's retry of a plain Task does: a
-- new run of the job), 'new' (any other message: refused while a job of that id is
-- waiting, delayed or running, so a publish sent twice is one job; a new run once
-- that job has finished, as a Celery task id sent again runs again).
-- Returns 1 when stored; 0 when refused or when the job of a retry is gone (removed
-- meanwhile): nothing is stored then, and no task-sent event goes out for a job that
-- was not sent.
local job, list, delayed, wake, active, ready, events =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local payload, delay, kind, id = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local retry = kind == 'retry'
local maxlen = ARGV[6]
local channels = tonumber(ARGV[8])
local first_field = 9 + channels
local state = redis.call('HGET', job, 'state')
if retry then
  if not state then
    return 0
  end
elseif state then
  if kind == 'own_id' then
    return 0
  end
  if kind == 'new' and state ~= 'completed' and state ~= 'failed' then
    return 0
  end
  -- A new run under the same id: the earlier run's record, logs and place in the
  -- sets go (its result stays until the new run's replaces it). A message of the
  -- earlier run still on a list no longer matches the record, so it is skipped.
  redis.call('ZREM', KEYS[8], id)
  redis.call('ZREM', KEYS[9], id)
  redis.call('ZREM', delayed, id)
  redis.call('SREM', active, id)
  redis.call('DEL', job, KEYS[10])
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
