-- Reads budgets (KEYS: a hash and a sorted set each; ARGV[1]: now), counting expired holds as
-- spent: {spent, held, expired, ...}.
local out = {}
for i = 1, #KEYS - 1, 2 do
  local spent, held = budgetState(KEYS[i], KEYS[i + 1], tonumber(ARGV[1]))
  out[#out + 1] = spent
  out[#out + 1] = held
  out[#out + 1] = tonumber(redis.call("HGET", KEYS[i], "expired") or "0")
end
return out
