-- (lib/events.lua is prepended.)
-- Pauses or resumes a queue for every worker: while the flag is set, DELIVER takes
-- none of its messages and START hands back any already taken.
-- KEYS: paused flag, events, ready list, then the queue's priority lists
-- ARGV: 1 to pause, 0 to resume; events kept
-- Returns 1 when the state changed, 0 when it already was so.
if ARGV[1] == '1' then
  if redis.call('SET', KEYS[1], '1', 'NX') == false then
    return 0
  end
  emit(KEYS[2], ARGV[2], 'paused', '')
  return 1
end
if redis.call('DEL', KEYS[1]) == 0 then
  return 0
end
-- Idle workers sleep on the ready list: wake as many as there are messages (a
-- worker that wakes keeps taking messages until the lists are empty).
local waiting = 0
for i = 4, #KEYS do
  waiting = waiting + redis.call('LLEN', KEYS[i])
end
for _ = 1, math.min(waiting, 100) do
  redis.call('LPUSH', KEYS[3], '1')
end
emit(KEYS[2], ARGV[2], 'resumed', '')
return 1
