-- Adds field/value pairs (ARGV after the TTLs, one TTL per key) to each bucket hash in KEYS.
local n = #KEYS
for k = 1, n do
  for i = n + 1, #ARGV, 2 do redis.call("HINCRBY", KEYS[k], ARGV[i], ARGV[i + 1]) end
  redis.call("PEXPIRE", KEYS[k], ARGV[k])
end
return 1
