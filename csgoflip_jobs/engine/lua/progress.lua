-- (lib/events.lua is prepended.)
-- Records a running job's progress, or appends a line to its logs.
-- KEYS: job hash, events, job logs list
-- ARGV: 'progress' or 'log', job id, the progress JSON or the log line, events kept,
--       log lines kept
-- Returns 1 (progress), the number of log lines (log), or 0 when the job is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if ARGV[1] == 'progress' then
  redis.call('HSET', KEYS[1], 'progress', ARGV[3])
  emit(KEYS[2], ARGV[4], 'progress', ARGV[2], 'data', ARGV[3])
  return 1
end
local lines = redis.call('RPUSH', KEYS[3], ARGV[3])
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[5]), -1)
return math.min(lines, tonumber(ARGV[5]))
