-- KEYS: user set key. ARGV: session key prefix.
-- Deletes every session of the user and the set; returns how many ids it held.
local ids = redis.call('SMEMBERS', KEYS[1])
for _, id in ipairs(ids) do
  redis.call('DEL', ARGV[1] .. id)
end
redis.call('DEL', KEYS[1])
return #ids
