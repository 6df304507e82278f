-- KEYS: job hash, completed zset, failed zset, Celery result key. ARGV: job id.
-- Removes a job that has finished (completed or failed) and its result;
-- returns 1, or 0 when the job is unknown or still queued or running.
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'completed' and state ~= 'failed' then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[4])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
