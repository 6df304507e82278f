-- KEYS: value key, fill lock key. ARGV: JSON value, ttl seconds, lock token.
-- Caches the value and gives up the right to fill, if we still hold it.
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
end
return 1
