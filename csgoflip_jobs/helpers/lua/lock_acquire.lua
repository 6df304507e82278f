-- KEYS: n resource keys, then their n fence keys. ARGV: lock value, duration ms, fence
-- counter TTL ms.
-- Sets every resource or none; returns the new fencing token of each, or nil.
-- A token is the counter + 1. Counters start from the server clock in
-- microseconds (about 1.8e15), so one found far below that is new, expired or lost its
-- data; it restarts from the clock, which is past every token it ever gave (far fewer
-- than a million locks a second), so tokens only ever grow, and a counter may expire
-- once unused for a while.
local n = #KEYS / 2
if n > 1 then
  for i = 1, n do
    if redis.call('EXISTS', KEYS[i]) == 1 then return nil end
  end
end
local tokens = {}
for i = 1, n do
  if not redis.call('SET', KEYS[i], ARGV[1], 'NX', 'PX', ARGV[2]) then return nil end
  local token = redis.call('INCR', KEYS[n + i])
  if token < 1000000000000000 then
    local t = redis.call('TIME')
    token = tonumber(t[1]) * 1000000 + tonumber(t[2])
    redis.call('SET', KEYS[n + i], string.format('%d', token))
  end
  redis.call('PEXPIRE', KEYS[n + i], ARGV[3])
  tokens[i] = token
end
return tokens
