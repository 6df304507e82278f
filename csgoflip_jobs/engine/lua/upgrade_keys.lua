-- Moves job records, with their logs, from the legacy layout (every queue's jobs in one
-- key space: csgoflip:job:<id>) to their queue's (csgoflip:queue:<queue>:job:<id>).
-- Nothing else of a job changes: in the legacy layout a job's Celery task id was its
-- job id, which is what a record without 'task_id' says today, so its messages, sets
-- and result stay valid. A record whose queue already holds a job of that id (added
-- after the new code started) is left where it is; one gone meanwhile is skipped.
-- KEYS: none (the legacy keys come from a SCAN of this Redis)
-- ARGV: for each record four names: its legacy key, its new key, its legacy logs
--       key, its new logs key
-- Returns {moved, {legacy keys left: their queue has that id already}}.
local moved, taken = 0, {}
for i = 1, #ARGV, 4 do
  local old, new, old_logs, new_logs = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if redis.call('EXISTS', new) == 1 then
    if redis.call('EXISTS', old) == 1 then
      table.insert(taken, old)
    end
  elseif redis.call('EXISTS', old) == 1 then
    redis.call('RENAME', old, new)
    if redis.call('EXISTS', old_logs) == 1 then
      redis.call('RENAME', old_logs, new_logs)
    end
    moved = moved + 1
  end
end
return {moved, taken}
