-- Cancels an admission (the keys of admit.lua): undoes what its mark says it counted, never
-- below zero, releases its hold in every budget, and leaves the mark "0" so that the admission,
-- should it arrive later, counts nothing.
local counted = redis.call("GET", KEYS[K.mark]) or ""
redis.call("SET", KEYS[K.mark], "0", "PX", ARGV[C.markTtl])
local kind, hold = string.match(counted, "^(%d):(%d+)$")
if kind ~= "1" and kind ~= "2" then return 0 end
uncount(KEYS[K.userCurrent])
uncount(KEYS[K.ipCurrent])
if ARGV[C.wide] == "1" then uncount(KEYS[K.wideCurrent]) end
if kind == "2" then
  uncount(KEYS[K.hourlyCurrent])
  uncount(KEYS[K.total])
end
local first = ARGV[C.anonymous] == "1" and K.total + 1 or K.hourlyCurrent
for i = first, #KEYS - 1, 2 do
  if redis.call("ZREM", KEYS[i + 1], ARGV[C.admissionId] .. ":" .. hold) == 1 then
    redis.call("HINCRBY", KEYS[i], "held", -tonumber(hold))
  end
end
return 1
