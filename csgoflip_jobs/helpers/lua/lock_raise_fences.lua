-- KEYS: fence keys. ARGV: one token per key. Raises each counter to at least its token.
for i = 1, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') < tonumber(ARGV[i]) then
    redis.call('SET', KEYS[i], ARGV[i])
  end
end
return #KEYS
