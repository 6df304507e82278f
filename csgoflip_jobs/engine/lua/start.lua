-- (lib/events.lua is prepended.)
-- Marks a delivered try as started, or says why it must not run.
-- KEYS: job hash, active set, events, paused flag
-- ARGV: 1 job id, 2 attempt (1-based), 3 task name, 4 queue, 5 the message's delivery
--       tag, 6 run token (unique per delivery handled), 7 stalls allowed, 8 events kept
-- Returns 1 to run; 0 when this delivery is stale (the job finished, was removed or
-- trimmed, a later try is scheduled, or the job was re-sent as another message);
-- 2 when the job stalled more often than allowed (fail it without running);
-- 3 when its queue is paused (hand the message back).
local job, active, events = KEYS[1], KEYS[2], KEYS[3]
local id, maxlen = ARGV[1], ARGV[8]
local state, attempt, tag, run, stalled =
  unpack(redis.call('HMGET', job, 'state', 'attempt', 'tag', 'run', 'stalled'))
if not state or state == 'completed' or state == 'failed' then
  return 0
end
if attempt and tonumber(attempt) > tonumber(ARGV[2]) then
  return 0
end
if tag and ARGV[5] ~= '' and tag ~= ARGV[5] then
  return 0
end
if state == 'active' and run == ARGV[6] then
  return 1  -- this very START, sent again after its reply was lost
end
if redis.call('EXISTS', KEYS[4]) == 1 then
  return 3
end
if state == 'active' then
  -- Started before and never finished: the worker running it died.
  stalled = (tonumber(stalled) or 0) + 1
  redis.call('HSET', job, 'stalled', stalled)
  emit(events, maxlen, 'stalled', id, 'count', stalled)
  if stalled > tonumber(ARGV[7]) then
    return 2
  end
end
redis.call('HSET', job, 'state', 'active', 'processed_on', now_ms(), 'attempt', ARGV[2],
           'name', ARGV[3], 'queue', ARGV[4], 'run', ARGV[6])
redis.call('HDEL', job, 'msg', 'msg_list', 'due')
redis.call('SADD', active, id)
emit(events, maxlen, 'active', id, 'prev', state, 'attempt', ARGV[2])
return 1
