-- Library (needs lib/events.lua): marking a delivered try started, shared by START and
-- DELIVER (which starts the try in the step that takes its message, see deliver.lua).
-- start_try(job, active, events, paused, id, attempt, name, queue, tag, run, allowed,
--           maxlen) returns 1 to run; 0 when this delivery is stale (the job finished,
-- was removed or trimmed, a later try is scheduled, or the job was re-sent as another
-- message); 2 when the job stalled more often than `allowed` (fail it without
-- running); 3 when its queue is paused (hand the message back). `run` is a token
-- unique per delivery handled, so the same start sent twice is one.
local function start_try(job, active, events, paused, id, attempt, name, queue, tag, run,
                         allowed, maxlen)
  local state, current, current_tag, current_run, stalled =
    unpack(redis.call('HMGET', job, 'state', 'attempt', 'tag', 'run', 'stalled'))
  if not state or state == 'completed' or state == 'failed' then
    return 0
  end
  if current and tonumber(current) > tonumber(attempt) then
    return 0
  end
  if current_tag and tag ~= '' and current_tag ~= tag then
    return 0
  end
  if state == 'active' and current_run == run then
    return 1  -- this very start, sent again after its reply was lost
  end
  if redis.call('EXISTS', paused) == 1 then
    return 3
  end
  if state == 'active' then
    -- Started before and never finished: the worker running it died.
    stalled = (tonumber(stalled) or 0) + 1
    redis.call('HSET', job, 'stalled', stalled)
    emit(events, maxlen, 'stalled', id, 'count', stalled)
    if stalled > tonumber(allowed) then
      return 2
    end
  end
  redis.call('HSET', job, 'state', 'active', 'processed_on', now_ms(), 'attempt', attempt,
             'name', name, 'queue', queue, 'run', run)
  redis.call('HDEL', job, 'msg', 'msg_list', 'due')
  redis.call('SADD', active, id)
  emit(events, maxlen, 'active', id, 'prev', state, 'attempt', attempt)
  return 1
end
