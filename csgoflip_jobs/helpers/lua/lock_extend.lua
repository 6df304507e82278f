-- KEYS: resource keys. ARGV: lock value, duration ms.
-- Extends every key, only if every one still holds our value; 1 on success.
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[1] then return 0 end
end
for i = 1, #KEYS do
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
return 1
