-- Library, prepended to the scripts that take a waiting job's message off its list.
-- take_message(list, message, id, lists) LREMs the message from `list`; when that
-- copy is not there (a redelivered message carries other bytes), it looks for the
-- message of job `id` in each of `lists`. Returns 1 when a message was taken.
local function message_id(item)
  local id = string.match(item, '"headers": {"lang": "[^"]*", "task": "[^"]*", "id": "([^"]+)"')
  if id then return id end
  local ok, message = pcall(cjson.decode, item)
  local headers = ok and type(message) == 'table' and message['headers']
  return type(headers) == 'table' and headers['id'] or nil
end

local function take_message(list, message, id, lists)
  if list and message and redis.call('LREM', list, 1, message) == 1 then
    return 1
  end
  local needle = cjson.encode(id)
  for _, key in ipairs(lists) do
    for _, item in ipairs(redis.call('LRANGE', key, 0, -1)) do
      if string.find(item, needle, 1, true) and message_id(item) == id then
        redis.call('LREM', key, 1, item)
        return 1
      end
    end
  end
  return 0
end
