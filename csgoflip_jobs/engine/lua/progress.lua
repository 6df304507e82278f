-- (lib/events.lua is prepended.)
-- Records a running job's progress, or appends a line to its logs, keeping the newest
-- lines within both bounds (their number, and their bytes: 'log_bytes' on the record).
-- KEYS: job hash, events, job logs list
-- ARGV: 'progress' or 'log', job id, the progress JSON or the log line, events kept,
--       log lines kept, log bytes kept
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
local bytes = redis.call('HINCRBY', KEYS[1], 'log_bytes', #ARGV[3])
local max_lines, max_bytes = tonumber(ARGV[5]), tonumber(ARGV[6])
while lines > 1 and (lines > max_lines or bytes > max_bytes) do
  bytes = bytes - #redis.call('LPOP', KEYS[3])
  lines = lines - 1
end
redis.call('HSET', KEYS[1], 'log_bytes', bytes)
return lines
