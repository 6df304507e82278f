-- KEYS: job hash, active set, finished zset (completed or failed), Celery result key
-- ARGV: 1 outcome (completed|failed|retry), 2 encoded Celery meta, 3 job id,
--       4 attempts made, 5 return value JSON or failed reason, 6 stack trace,
--       7 default number kept, 8 job key prefix, 9 Celery result key prefix
-- Stores the result, records the outcome, and trims the finished set to the
-- newest N, deleting the job hashes and Celery results of what it trims.
local job, active, finished, result_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local outcome, meta, id = ARGV[1], ARGV[2], ARGV[3]
local state = redis.call('HGET', job, 'state')
if state == 'completed' or state == 'failed' then
  return 0
end
redis.call('SREM', active, id)
redis.call('SET', result_key, meta)
redis.call('PUBLISH', result_key, meta)
if outcome == 'retry' then
  redis.call('HSET', job, 'attempts_made', ARGV[4], 'failed_reason', ARGV[5],
             'stacktrace', ARGV[6])
  return 1
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('HSET', job, 'state', outcome, 'finished_on', now_ms, 'attempts_made', ARGV[4])
if outcome == 'completed' then
  redis.call('HSET', job, 'returnvalue', ARGV[5])
  redis.call('HDEL', job, 'failed_reason', 'stacktrace')
else
  redis.call('HSET', job, 'failed_reason', ARGV[5], 'stacktrace', ARGV[6])
end
local keep = redis.call('HGET', job, outcome == 'completed' and 'remove_on_complete'
                                                           or 'remove_on_fail')
if keep == 'true' then
  redis.call('DEL', job, result_key)
  return 1
end
redis.call('ZADD', finished, now_us, id)
if keep == 'false' then
  return 1
end
local n = tonumber(keep) or tonumber(ARGV[7])
local extra = redis.call('ZCARD', finished) - n
if extra > 0 then
  local old = redis.call('ZRANGE', finished, 0, extra - 1)
  for _, old_id in ipairs(old) do
    redis.call('DEL', ARGV[8] .. old_id, ARGV[9] .. old_id)
  end
  redis.call('ZREMRANGEBYRANK', finished, 0, extra - 1)
end
return 1
