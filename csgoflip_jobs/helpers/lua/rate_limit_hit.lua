-- KEYS: counter. ARGV: window seconds.
-- Counts one hit and guarantees the counter a TTL (also repairing one left
-- without); returns {count after this hit, seconds until the window resets}.
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
