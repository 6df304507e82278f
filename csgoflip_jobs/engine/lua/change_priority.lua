-- Replaces a waiting or delayed job's message by the same message at another
-- priority, only if the job still holds the message the caller read.
-- KEYS: job hash, the new priority's list
-- ARGV: the message read, the new message, the job's new options (JSON)
-- Returns 1 changed; 0 when the job moved on (started, finished, changed meanwhile)
-- or its message is already in a worker's hands.
local state, message, list = unpack(redis.call('HMGET', KEYS[1], 'state', 'msg', 'msg_list'))
if message ~= ARGV[1] then
  return 0
end
if state == 'waiting' then
  if redis.call('LREM', list, 1, message) == 0 then
    return 0
  end
  redis.call('LPUSH', KEYS[2], ARGV[2])
elseif state ~= 'delayed' then
  return 0
end
redis.call('HSET', KEYS[1], 'msg', ARGV[2], 'msg_list', KEYS[2], 'opts', ARGV[3])
return 1
