-- (lib/events.lua, lib/jobs.lua and lib/unacked.lua are prepended.)
-- Stores a finished try's outcome: Celery's result, the job's record, its event and
-- the queue's per-minute metrics, then trims the finished set to the newest N,
-- deleting the records, results and logs of what it trims.
-- It also acks the delivery that ran the try (drops its kombu unacked entry), in the
-- same atomic step: once the outcome is stored, that delivery must never be handed
-- out again, and a crash before Celery's own ack can no longer leave it behind (that
-- ack, later, finds nothing to drop). Whatever the job's state, the try is over.
-- KEYS: job hash, active set, finished zset (completed or failed), Celery result key,
--       events, metrics list, metrics meta hash, unacked hash, unacked index zset
-- ARGV: 1 outcome (completed|failed|retry), 2 encoded Celery meta ('' for none), 3 job id,
--       4 attempts made, 5 return value JSON or failed reason, 6 stack trace,
--       7 default number kept, 8 the queue's job key prefix, 9 Celery result key
--       prefix, 10 events kept, 11 metrics minutes kept, 12 the queue's job logs key
--       prefix,
--       13 the delivery's tag ('' when not run from a delivery, e.g. a revoke)
-- Returns 1; 0 when the job already finished or is gone (removed, obliterated).
local job, active, finished, result_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local outcome, meta, id = ARGV[1], ARGV[2], ARGV[3]
if ARGV[13] ~= '' then
  drop_unacked(KEYS[8], KEYS[9], ARGV[13])
end
local state = redis.call('HGET', job, 'state')
if not state or state == 'completed' or state == 'failed' then
  return 0
end
redis.call('SREM', active, id)
if meta ~= '' then  -- '' for a job run with ignore_result: no Celery result
  redis.call('SET', result_key, meta)
  redis.call('PUBLISH', result_key, meta)
end
if outcome == 'retry' then
  redis.call('HSET', job, 'attempts_made', ARGV[4], 'failed_reason', ARGV[5],
             'stacktrace', ARGV[6])
  return 1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('HSET', job, 'state', outcome, 'finished_on', now, 'attempts_made', ARGV[4])
if outcome == 'completed' then
  redis.call('HSET', job, 'returnvalue', ARGV[5])
  redis.call('HDEL', job, 'failed_reason', 'stacktrace')
  emit(KEYS[5], ARGV[10], 'completed', id, 'returnvalue', ARGV[5])
else
  redis.call('HSET', job, 'failed_reason', ARGV[5], 'stacktrace', ARGV[6])
  emit(KEYS[5], ARGV[10], 'failed', id, 'failed_reason', ARGV[5], 'attempts_made', ARGV[4])
end
-- Per-minute counts: data[0] holds the last minute before the current one;
-- the meta hash holds the current minute, its count so far and the total.
local minute = math.floor(now / 60000)
local last = tonumber(redis.call('HGET', KEYS[7], 'minute'))
if last == minute then
  redis.call('HINCRBY', KEYS[7], 'current', 1)
else
  local kept = tonumber(ARGV[11])
  if last then
    local fill = {redis.call('HGET', KEYS[7], 'current')}
    for _ = 2, math.min(minute - last, kept) do
      table.insert(fill, 0)
    end
    redis.call('LPUSH', KEYS[6], unpack(fill))
    redis.call('LTRIM', KEYS[6], 0, kept - 2)
  end
  redis.call('HSET', KEYS[7], 'minute', minute, 'current', 1)
end
redis.call('HINCRBY', KEYS[7], 'total', 1)
local keep = redis.call('HGET', job, outcome == 'completed' and 'remove_on_complete'
                                                           or 'remove_on_fail')
if keep == 'true' then
  redis.call('DEL', job, result_key, ARGV[12] .. id)
  return 1
end
redis.call('ZADD', finished, now_us, id)
if keep == 'false' then
  return 1
end
local n = tonumber(keep) or tonumber(ARGV[7])
local extra = redis.call('ZCARD', finished) - n
if extra > 0 then
  local trimmed = redis.call('ZRANGE', finished, 0, extra - 1)
  for _, old_id in ipairs(trimmed) do
    local old = ARGV[8] .. old_id
    redis.call('DEL', old, result_key_of(ARGV[9], old, old_id), ARGV[12] .. old_id)
  end
  redis.call('ZREMRANGEBYRANK', finished, 0, extra - 1)
end
return 1
