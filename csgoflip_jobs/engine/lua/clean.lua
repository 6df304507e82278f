-- (lib/events.lua and lib/jobs.lua are prepended.)
-- Removes up to `limit` jobs of a finished set (completed or failed) that finished
-- more than `grace` ms ago, with their records, results and logs.
-- KEYS: the finished zset, events
-- ARGV: 1 the queue's job key prefix, 2 Celery result key prefix, 3 the queue's job
--       logs key prefix,
--       4 grace ms (jobs finished longer ago go), 5 limit, 6 state name, 7 events kept
-- Returns the ids removed.
local t = redis.call('TIME')
-- The set is scored by finish time in µs.
local cutoff = tonumber(t[1]) * 1000000 + tonumber(t[2]) - tonumber(ARGV[4]) * 1000
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[5]))
for _, id in ipairs(ids) do
  local job = ARGV[1] .. id
  redis.call('DEL', job, result_key_of(ARGV[2], job, id), ARGV[3] .. id)
  redis.call('ZREM', KEYS[1], id)
end
if #ids > 0 then
  emit(KEYS[2], ARGV[7], 'cleaned', '', 'count', #ids, 'state', ARGV[6])
end
return ids
