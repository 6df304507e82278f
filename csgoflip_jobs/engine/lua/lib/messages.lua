-- Library (needs lib/jobs.lua), prepended to the scripts that read or take a waiting
-- job's message off its list.
-- message_id(item) is the job id of a message (JSON text), nil when it is none.
-- take_message(list, message, id, lists) LREMs the message from `list`; when that
-- copy is not there (a redelivered message carries other bytes), it looks for the
-- message of job `id` in each of `lists`. Returns 1 when a message was taken.
local function message_id(item)
  -- Most messages are read in place: the task id is the job id unless the platform's
  -- header names one, and an id holding an escape (a quote, a backslash, a non-ASCII
  -- letter) is left to the decoder.
  if not string.find(item, '"job_id": ', 1, true) then
    local id = string.match(item, '"headers": {"lang": "[^"]*", "task": "[^"]*", "id": "([^"]+)"')
    if id and not string.find(id, '\\', 1, true) then
      return id
    end
  end
  local ok, message = pcall(cjson.decode, item)
  local headers = ok and type(message) == 'table' and message['headers']
  return type(headers) == 'table' and job_id_of(headers) or nil
end

local function take_message(list, message, id, lists)
  if list and message and redis.call('LREM', list, 1, message) == 1 then
    return 1
  end
  -- An id of plain characters reads the same in every JSON encoder: look for it first.
  local needle = string.match(id, '^[%w:._@-]+$') and cjson.encode(id)
  for _, key in ipairs(lists) do
    for _, item in ipairs(redis.call('LRANGE', key, 0, -1)) do
      if (not needle or string.find(item, needle, 1, true)) and message_id(item) == id then
        redis.call('LREM', key, 1, item)
        return 1
      end
    end
  end
  return 0
end
