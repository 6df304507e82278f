-- (lib/jobs.lua and lib/messages.lua are prepended.)
-- Deletes up to `batch` of a queue's jobs of every state, then, once none is left,
-- the queue's own keys. Refuses while jobs run unless forced.
-- KEYS: 1 active set, 2 delayed, 3 completed, 4 failed, then the queue's other keys
--       (events, metrics, paused flag, ready and wake lists), then after a '' the
--       queue's priority lists
-- ARGV: 1 force (1/0), 2 the queue's job key prefix, 3 Celery result key prefix,
--       4 the queue's job logs key prefix, 5 batch
-- Returns {jobs deleted, 1 when the queue is gone else 0}, or -1 (jobs are running).
if ARGV[1] ~= '1' and redis.call('SCARD', KEYS[1]) > 0 then
  return -1
end
local budget, deleted = tonumber(ARGV[5]), 0
local function delete(id)
  local job = ARGV[2] .. id
  redis.call('DEL', job, result_key_of(ARGV[3], job, id), ARGV[4] .. id)
  deleted = deleted + 1
end
local separator = 5
while KEYS[separator] ~= '' do
  separator = separator + 1
end
for i = separator + 1, #KEYS do
  while budget > 0 do
    local item = redis.call('RPOP', KEYS[i])
    if not item then
      break
    end
    budget = budget - 1
    local id = message_id(item)
    if id then
      delete(id)
    end
  end
end
for i = 2, 4 do
  if budget > 0 then
    local ids = redis.call('ZRANGE', KEYS[i], 0, budget - 1)
    for _, id in ipairs(ids) do
      delete(id)
      redis.call('ZREM', KEYS[i], id)
    end
    budget = budget - #ids
  end
end
if budget > 0 then
  for _, id in ipairs(redis.call('SPOP', KEYS[1], budget)) do
    delete(id)
    budget = budget - 1
  end
end
if budget > 0 then
  for i = 5, separator - 1 do
    redis.call('DEL', KEYS[i])
  end
  return {deleted, 1}
end
return {deleted, 0}
