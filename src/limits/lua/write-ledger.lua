-- Stores a record once per record id, adds its cost to the user's spend counters, and settles
-- its hold in each budget (KEYS after the four ledger keys, a hash and a sorted set each): the
-- hold (W.member, "<id>:<µUSD>", or "" for none) is released if it is still live, and the cost
-- becomes spent; if it expired unsettled (counted as spent in full), the cost replaces that
-- amount. All or nothing, once: a replay finds the record id and changes nothing.
if redis.call("SET", KEYS[L.record], ARGV[W.record], "NX", "EX", ARGV[W.retention]) == false then
  return 0
end
local cost = tonumber(ARGV[W.cost])
redis.call("INCRBY", KEYS[L.spendTotal], cost)
redis.call("INCR", KEYS[L.spendStreams])
redis.call("INCRBY", KEYS[L.spendDay], cost)
redis.call("EXPIRE", KEYS[L.spendDay], 2678400)
local member = ARGV[W.member]
local hold = tonumber(string.match(member, ":(%d+)$") or "0")
for i = L.budgets, #KEYS - 1, 2 do
  local add = cost
  if member ~= "" then
    if redis.call("ZREM", KEYS[i + 1], member) == 1 then
      redis.call("HINCRBY", KEYS[i], "held", -hold)
    elseif redis.call("HDEL", KEYS[i], "x:" .. member) == 1 then
      add = cost - hold
      redis.call("HINCRBY", KEYS[i], "expired", -hold)
    end
  end
  redis.call("HINCRBY", KEYS[i], "spent", add)
  redis.call("PEXPIRE", KEYS[i], ARGV[W.budgetTtl])
end
return 1
