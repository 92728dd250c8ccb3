-- The whole admission in one atomic EVAL, in contract order, as four steps (at the bottom):
-- checkWindows (the user's and the IP's sliding windows with ratelimit's arithmetic and key
-- layout; for IPv6 also the /48's window at its own limit, A.wideLimit, 0 for none), checkQuota
-- (for anonymous callers the hourly and total quotas), decideHold (each applicable budget, a
-- hash and a sorted set per budget after the quota keys; the hold is `decideHold` of
-- src/limits/budget.ts, line for line) and commit. The windows count once they all pass (a
-- quota refusal still counts in them); nothing else counts unless everything passes.
-- K.mark marks what this admission counted ("1:<hold>" windows, "2:<hold>" windows and quota;
-- "0" once cancelled, when the script counts nothing). The names K, A, R (answer fields) and
-- REFUSED come from src/limits/upstash-protocol.ts, prepended to this script.
if redis.call("EXISTS", KEYS[K.mark]) == 1 then return {REFUSED.cancelled, 0, 0} end
local now, markTtl = tonumber(ARGV[A.now]), ARGV[A.markTtl]
local anon = ARGV[A.anonymous] == "1"
local ul, uw = tonumber(ARGV[A.userLimit]), tonumber(ARGV[A.userWindow])
local il, iw = tonumber(ARGV[A.ipLimit]), tonumber(ARGV[A.ipWindow])
local wl = tonumber(ARGV[A.wideLimit])
-- The hourly quota's window (checkQuota reads it, commit counts in it) and where the budgets'
-- keys start: after the quota keys of an anonymous caller.
local hw, first = 1, K.hourlyCurrent
local out = {}
for i = 1, R.size do out[i] = 0 end

local function num(key) return tonumber(redis.call("GET", key) or "0") end
local function used(current, previous, window)
  return num(current) + math.floor((1 - (now % window) / window) * num(previous))
end
local function count(key, window)
  if redis.call("INCR", key) == 1 then redis.call("PEXPIRE", key, window * 2 + 1000) end
end
-- A refusal of window `k` (its current key; the previous follows) also says its two counts.
local function refuse(code, k)
  out[R.refused] = code
  out[R.countCurrent], out[R.countPrevious] = num(KEYS[k]), num(KEYS[k + 1])
  return out
end

-- The rate windows, counting nothing: the refusal, or nil when all pass.
local function checkWindows()
  local uu = used(KEYS[K.userCurrent], KEYS[K.userPrevious], uw)
  local iu = used(KEYS[K.ipCurrent], KEYS[K.ipPrevious], iw)
  if uu >= ul then
    out[R.ipLeft] = math.max(0, il - iu)
    return refuse(REFUSED.user, K.userCurrent)
  end
  out[R.userLeft] = ul - uu
  if iu >= il then return refuse(REFUSED.ip, K.ipCurrent) end
  if wl > 0 and used(KEYS[K.wideCurrent], KEYS[K.widePrevious], iw) >= wl then
    return refuse(REFUSED.ipWide, K.wideCurrent)
  end
  out[R.userLeft], out[R.ipLeft], out[R.hourlyLeft], out[R.totalLeft] = ul - uu - 1, il - iu - 1, -1, -1
  return nil
end

-- Counts the windows that passed, and marks that they did.
local function countWindows()
  count(KEYS[K.userCurrent], uw)
  count(KEYS[K.ipCurrent], iw)
  if wl > 0 then count(KEYS[K.wideCurrent], iw) end
  redis.call("SET", KEYS[K.mark], "1:0", "PX", markTtl)
end

-- The anonymous quotas, total first: the refusal (which counts the windows), or nil.
local function checkQuota()
  if not anon then return nil end
  local hl, qcap = tonumber(ARGV[A.hourlyLimit]), tonumber(ARGV[A.totalQuota])
  hw = tonumber(ARGV[A.hourlyWindow])
  local hu, total = used(KEYS[K.hourlyCurrent], KEYS[K.hourlyPrevious], hw), num(KEYS[K.total])
  out[R.hourlyLeft], out[R.totalLeft] = hl - hu - 1, qcap - total - 1
  if total >= qcap then
    countWindows()
    out[R.hourlyLeft], out[R.totalLeft] = math.max(0, hl - hu), 0
    return refuse(REFUSED.total, K.hourlyCurrent)
  end
  if hu >= hl then
    countWindows()
    out[R.hourlyLeft], out[R.totalLeft] = 0, qcap - total
    return refuse(REFUSED.hourly, K.hourlyCurrent)
  end
  first = K.total + 1
  return nil
end

-- The hold the budgets allow, holding nothing yet: the refusal, or nil, max_tokens and the hold.
local function decideHold(budgets)
  local cap, inCost = tonumber(ARGV[A.capMicroUsd]), tonumber(ARGV[A.inputMicroUsd])
  local outPico, ceiling = tonumber(ARGV[A.outputPicoUsd]), tonumber(ARGV[A.maxTokensCeiling])
  local function tokensFor(micro) return math.floor((micro - inCost) * 1000000 / outPico) end
  for i = 0, budgets - 1 do
    local limit = tonumber(ARGV[A.budgets + 2 * i])
    local spent, held = budgetState(KEYS[first + 2 * i], KEYS[first + 2 * i + 1], now)
    local free = limit - spent - held
    if tokensFor(free) < 1 then
      out[R.refused], out[R.refusedBy] = REFUSED.budget, i
      out[R.settledOut] = tokensFor(limit - spent) < 1 and 1 or 0
      return out
    end
    if free < cap then cap = free end
  end
  local maxTokens = math.min(ceiling, tokensFor(cap))
  return nil, maxTokens, inCost + math.ceil(maxTokens * outPico / 1000000)
end

-- Counts everything: the windows, the quota unit, the hold in every budget, and the mark.
local function commit(budgets, maxTokens, hold)
  countWindows()
  if anon then
    count(KEYS[K.hourlyCurrent], hw)
    redis.call("INCR", KEYS[K.total])
    redis.call("PEXPIRE", KEYS[K.total], ARGV[A.totalQuotaTtl])
  end
  for i = 0, budgets - 1 do
    local h, z = KEYS[first + 2 * i], KEYS[first + 2 * i + 1]
    redis.call("HINCRBY", h, "held", hold)
    redis.call("ZADD", z, now + tonumber(ARGV[A.holdTtl]), ARGV[A.admissionId] .. ":" .. hold)
    redis.call("PEXPIRE", h, ARGV[A.budgets + 2 * i + 1])
    redis.call("PEXPIRE", z, ARGV[A.budgets + 2 * i + 1])
  end
  redis.call("SET", KEYS[K.mark], (anon and "2:" or "1:") .. hold, "PX", markTtl)
  out[R.refused], out[R.maxTokens], out[R.hold] = REFUSED.none, maxTokens, hold
  return out
end

local refused = checkWindows()
if refused then return refused end
refused = checkQuota()
if refused then return refused end
local budgets = (#KEYS - first + 1) / 2
local maxTokens, hold
refused, maxTokens, hold = decideHold(budgets)
if refused then return refused end
return commit(budgets, maxTokens, hold)
