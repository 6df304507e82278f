-- KEYS: session key. ARGV: session id, user-set key prefix, user-set key suffix, the
-- sessions-ended channel.
-- Deletes the session, removes its id from its user's set and announces its fingerprint
-- (sha1 of its id) on the channel, so its live sockets close; 1 if it existed.
local raw = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
if raw then
  local ok, session = pcall(cjson.decode, raw)
  if ok and type(session) == 'table' and session.userId ~= nil then
    redis.call('SREM', ARGV[2] .. tostring(session.userId) .. ARGV[3], ARGV[1])
  end
  redis.call('PUBLISH', ARGV[4], redis.sha1hex(ARGV[1]))
  return 1
end
return 0
