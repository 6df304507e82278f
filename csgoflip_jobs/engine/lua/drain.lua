-- (lib/events.lua, lib/jobs.lua, lib/held.lua and lib/messages.lua are prepended.)
-- Removes up to `batch` of a queue's waiting jobs (and, when asked, delayed ones):
-- their messages and records. Call again until it reports done; the last call also
-- removes the jobs held in workers' prefetch buffers (their deliveries are then
-- skipped). A message whose job finished or is gone is stale and dropped too.
-- KEYS: delayed zset, events, kombu's unacked hash, then the queue's priority lists
-- ARGV: 1 the queue's job key prefix, 2 batch, 3 delayed too (1/0), 4 events kept,
--       5 queue name, 6 the message header holding the try number, 7 the queue's job
--       logs key prefix
-- Returns {jobs removed, 1 when nothing is left to drain else 0, messages taken off}.
local prefix, logs = ARGV[1], ARGV[7]
local budget, removed, popped = tonumber(ARGV[2]), 0, 0
local function drop(id, states)
  local state = redis.call('HGET', prefix .. id, 'state')
  if states[state] then
    redis.call('DEL', prefix .. id, logs .. id)
    removed = removed + 1
  end
end
for i = 4, #KEYS do
  while budget > 0 do
    local item = redis.call('RPOP', KEYS[i])
    if not item then
      break
    end
    budget = budget - 1
    popped = popped + 1
    local id = message_id(item)
    if id then
      -- 'active' here is a job whose worker died and whose message came back.
      drop(id, {waiting = true, active = true})
    end
  end
end
if budget > 0 and ARGV[3] == '1' then
  local ids = redis.call('ZRANGE', KEYS[1], 0, budget - 1)
  for _, id in ipairs(ids) do
    drop(id, {delayed = true})
    redis.call('ZREM', KEYS[1], id)
  end
  budget = budget - #ids
end
local done = budget > 0
if done then
  for _, id in ipairs(held_waiting(KEYS[3], ARGV[5], prefix, ARGV[6])) do
    drop(id, {waiting = true})
  end
end
if removed > 0 then
  emit(KEYS[2], ARGV[4], 'drained', '', 'count', removed)
end
return {removed, done and 1 or 0, popped}
