-- A budget's state (hash h: `spent`, `held`, `expired`; sorted set z: one member
-- `<id>:<µUSD>` per live hold, scored by its expiry). A hold that expired unsettled (its
-- isolate died, its record could not be written) counts as spent in full, since the provider
-- may have billed all of it: its µUSD move from `held` to `spent` (and to `expired`, for
-- operators), and the field `x:<member>` remembers it, so a record that arrives later replaces
-- that amount (write-ledger.lua).
local function budgetState(h, z, now)
  local expired = redis.call("ZRANGEBYSCORE", z, "-inf", now)
  if #expired > 0 then
    local total = 0
    for _, m in ipairs(expired) do
      local amount = tonumber(string.match(m, ":(%d+)$"))
      total = total + amount
      redis.call("HSET", h, "x:" .. m, amount)
    end
    redis.call("HINCRBY", h, "held", -total)
    redis.call("HINCRBY", h, "spent", total)
    redis.call("HINCRBY", h, "expired", total)
    redis.call("ZREMRANGEBYSCORE", z, "-inf", now)
  end
  local v = redis.call("HMGET", h, "spent", "held")
  return tonumber(v[1] or "0"), tonumber(v[2] or "0")
end
