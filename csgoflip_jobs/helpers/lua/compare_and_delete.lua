-- KEYS: keys. ARGV: value. Deletes each key that still holds ARGV[1]; returns how many.
local deleted = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    deleted = deleted + 1
  end
end
return deleted
