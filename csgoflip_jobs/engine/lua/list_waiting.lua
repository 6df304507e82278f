-- (lib/jobs.lua, lib/held.lua and lib/messages.lua are prepended.)
-- The ids of a queue's waiting jobs in the order they will run, positions
-- start..stop (stop -1: to the end): first those held in workers' prefetch
-- buffers, then each priority list from its tail (the next popped).
-- KEYS: kombu's unacked hash, then the queue's priority lists in pop order
-- ARGV: queue name, the queue's job key prefix, the message header holding the try
--       number, start, stop
-- Returns the ids ('' for an item that is not a readable message).
local start, stop = tonumber(ARGV[4]), tonumber(ARGV[5])
local out, pos = {}, 0
local function wanted(p)
  return p >= start and (stop < 0 or p <= stop)
end
for _, id in ipairs(held_waiting(KEYS[1], ARGV[1], ARGV[2], ARGV[3])) do
  if wanted(pos) then
    table.insert(out, id)
  end
  pos = pos + 1
end
for i = 2, #KEYS do
  if stop >= 0 and pos > stop then
    break
  end
  local len = redis.call('LLEN', KEYS[i])
  -- Run-order position pos + k is list index len - 1 - k (the tail runs first).
  local first, last = math.max(start - pos, 0), len - 1
  if stop >= 0 then
    last = math.min(last, stop - pos)
  end
  if first <= last then
    local items = redis.call('LRANGE', KEYS[i], len - 1 - last, len - 1 - first)
    for j = #items, 1, -1 do
      table.insert(out, message_id(items[j]) or '')
    end
  end
  pos = pos + len
end
return out
