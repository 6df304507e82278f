-- Library, prepended to the scripts that change a job's state.
-- emit(stream, maxlen, event, job_id, ...) appends one event to a queue's event
-- stream, in the same atomic step as the change it reports, trimmed to about
-- `maxlen` entries; further arguments are field/value pairs.
local function emit(stream, maxlen, event, job_id, ...)
  redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'event', event, 'job_id', job_id, ...)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
