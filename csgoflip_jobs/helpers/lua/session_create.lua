-- KEYS: session key, user set key. ARGV: session JSON, the session's ttl seconds,
-- session id, session key prefix, the set's ttl seconds (the session's plus the
-- touch interval). Stores the session, adds its id to the user's set, prunes ids
-- whose session expired, and makes sure the set outlives the new session.
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('EXISTS', ARGV[4] .. id) == 0 then
    redis.call('SREM', KEYS[2], id)
  end
end
if redis.call('TTL', KEYS[2]) < tonumber(ARGV[5]) then
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end
return 1
