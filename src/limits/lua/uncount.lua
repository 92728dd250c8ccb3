-- Takes one back from a counter, never below zero (DECR keeps the counter's TTL).
local function uncount(key)
  if tonumber(redis.call("GET", key) or "0") > 0 then redis.call("DECR", key) end
end
