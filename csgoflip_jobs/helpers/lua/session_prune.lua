-- KEYS: user set key. ARGV: session key prefix.
-- Removes ids whose session expired; returns {removed, live id, live id, ...}.
local result = {0}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. id) == 0 then
    redis.call('SREM', KEYS[1], id)
    result[1] = result[1] + 1
  else
    table.insert(result, id)
  end
end
return result
