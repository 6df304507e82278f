-- KEYS: fence keys. ARGV: the counters' TTL ms, then one token per key. Raises each
-- counter to at least its token (and keeps it for the TTL).
for i = 1, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') < tonumber(ARGV[i + 1]) then
    redis.call('SET', KEYS[i], ARGV[i + 1])
  end
  redis.call('PEXPIRE', KEYS[i], ARGV[1])
end
return #KEYS
