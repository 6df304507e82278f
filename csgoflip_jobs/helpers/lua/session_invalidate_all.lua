-- KEYS: user set key. ARGV: session key prefix, the sessions-ended channel.
-- Deletes every session of the user and the set, announcing each one's fingerprint
-- (sha1 of its id) on the channel; returns how many ids it held.
local ids = redis.call('SMEMBERS', KEYS[1])
for _, id in ipairs(ids) do
  redis.call('DEL', ARGV[1] .. id)
  redis.call('PUBLISH', ARGV[2], redis.sha1hex(id))
end
redis.call('DEL', KEYS[1])
return #ids
