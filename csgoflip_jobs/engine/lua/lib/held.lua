-- Library (needs lib/jobs.lua): jobs a worker has taken into its prefetch buffer but
-- not started.
-- held_waiting(unacked, queue, prefix, header) returns the ids (each once) of the
-- jobs of `queue` (records under `prefix`) whose delivery sits in kombu's unacked
-- hash while the job still waits for that very delivery. Entries are kombu's
-- [message, exchange, routing key]; the routing key is the queue. A delivery of an
-- earlier try, held until its ack while the next try is already queued, does not count.
local function held_waiting(unacked, queue, prefix, header)
  local quoted = cjson.encode(queue)
  local seen, ids = {}, {}
  for _, raw in ipairs(redis.call('HVALS', unacked)) do
    -- A plain substring test first: other queues' entries are mostly not decoded.
    if string.find(raw, quoted, 1, true) then
      local ok, entry = pcall(cjson.decode, raw)
      local message = ok and type(entry) == 'table' and entry[3] == queue and entry[1]
      local headers = type(message) == 'table' and message['headers']
      local id = type(headers) == 'table' and job_id_of(headers)
      if type(id) == 'string' and not seen[id] then
        local props = message['properties']
        local tag = type(props) == 'table' and props['delivery_tag']
        local job = headers[header]
        local try = type(job) == 'table' and tonumber(job['attempt']) or 1
        local state, current, current_tag =
          unpack(redis.call('HMGET', prefix .. id, 'state', 'attempt', 'tag'))
        local same
        if current_tag then
          same = current_tag == tag
        else
          same = (tonumber(current) or 1) == try
        end
        if state == 'waiting' and same then
          seen[id] = true
          table.insert(ids, id)
        end
      end
    end
  end
  return ids
end
