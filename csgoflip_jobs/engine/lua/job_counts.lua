-- (lib/jobs.lua and lib/held.lua are prepended.)
-- Counts one queue's jobs per state in one atomic snapshot.
-- KEYS: the queue's priority lists, delayed zset, active set, completed zset,
--       failed zset, kombu's unacked hash, paused flag
-- ARGV: queue name, the queue's job key prefix, the message header holding the try
--       number
-- Returns {waiting, delayed, active, completed, failed, paused}: jobs waiting in a
-- paused queue count as paused, not waiting. A job held in a worker's prefetch
-- buffer counts as waiting: without it the counts could read "nothing waiting,
-- nothing active" while jobs sit in a worker.
local levels = #KEYS - 6
local waiting = 0
for i = 1, levels do
  waiting = waiting + redis.call('LLEN', KEYS[i])
end
waiting = waiting + #held_waiting(KEYS[levels + 5], ARGV[1], ARGV[2], ARGV[3])
local paused = 0
if redis.call('EXISTS', KEYS[levels + 6]) == 1 then
  waiting, paused = 0, waiting
end
return {
  waiting,
  redis.call('ZCARD', KEYS[levels + 1]),
  redis.call('SCARD', KEYS[levels + 2]),
  redis.call('ZCARD', KEYS[levels + 3]),
  redis.call('ZCARD', KEYS[levels + 4]),
  paused,
}
