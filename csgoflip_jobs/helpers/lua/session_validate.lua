-- KEYS: session key. ARGV: ttl seconds, user-set key prefix, user-set key suffix,
--       the set's ttl seconds (the session's plus the touch interval).
-- Touches a session: rewrites expiresAt and lastActivity and refreshes its TTL;
-- returns the new JSON, or nil when
-- the session is missing or its data is corrupt (which is then deleted). The
-- user's set is only ever given a longer life (EXPIRE GT), never a shorter one.
local raw = redis.call('GET', KEYS[1])
if not raw then return nil end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expires = now + tonumber(ARGV[1]) * 1000
-- Fast path for documents this service wrote: read userId and rewrite only the
-- trailing times with string patterns, leaving the rest byte for byte.
local user = string.match(raw, '^{"userId": "?([^",]+)"?, "createdAt": ')
local tail = string.format('"expiresAt": %d, "lastActivity": %d}', expires, now)
local updated, n = string.gsub(raw, '"expiresAt": %d+, "lastActivity": %d+}$', tail)
if not user or n == 0 then
  -- Any other writer: decode fully; data that is not a session is an invalid session.
  local ok, session = pcall(cjson.decode, raw)
  if not ok or type(session) ~= 'table' or session.userId == nil then
    redis.call('DEL', KEYS[1])
    return nil
  end
  session.expiresAt = expires
  session.lastActivity = now
  user = tostring(session.userId)
  updated = cjson.encode(session)
end
redis.call('SET', KEYS[1], updated, 'EX', ARGV[1])
redis.call('EXPIRE', ARGV[2] .. user .. ARGV[3], ARGV[4], 'GT')
return updated
