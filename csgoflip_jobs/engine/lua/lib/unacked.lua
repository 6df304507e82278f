-- Library: kombu's record of a delivery held by a worker is an entry in the unacked
-- hash plus its score in the unacked index; drop_unacked(hash, index, tag) drops both
-- (the Redis side of kombu's ack). Dropping an entry twice, or one gone, is harmless.
local function drop_unacked(hash, index, tag)
  redis.call('ZREM', index, tag)
  redis.call('HDEL', hash, tag)
end
