-- Library, prepended to the scripts that set unreadable items aside.
-- dead_letter(list, keep, item, reason) LPUSHes {raw, reason, at (server time, s)}
-- onto the dead-letter list and keeps its newest `keep` entries. Bytes 0x80-0xff
-- of the item are written as the text \xNN: the entry stays valid JSON whatever
-- the item held.
local function dead_letter(list, keep, item, reason)
  local t = redis.call('TIME')
  local raw = string.gsub(string.sub(item, 1, 10000), '[\128-\255]', function(c)
    return string.format('\\x%02x', string.byte(c))
  end)
  redis.call('LPUSH', list, cjson.encode({raw = raw, reason = reason, at = tonumber(t[1])}))
  redis.call('LTRIM', list, 0, tonumber(keep) - 1)
end
