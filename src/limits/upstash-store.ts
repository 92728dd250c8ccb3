/**
 * @module The LimitStore adapter over Upstash Redis (REST). Each decision is one atomic EVAL, so
 * one round trip: the admission (both rate windows and the anonymous quotas, which
 * `@upstash/ratelimit` cannot decide together) and the ledger are small Lua scripts with
 * ratelimit's sliding-window arithmetic and key layout; minting and usage reads, one window
 * each, are `@upstash/ratelimit` itself. Reading the metrics is one `/pipeline` request.
 */
import { Ratelimit } from "@upstash/ratelimit";
import { Redis } from "@upstash/redis/cloudflare";
import type { WindowSpec } from "../config";
import { LEDGER_RETENTION_SECONDS, type LedgerRecord, utcDay } from "../ledger/record";
import { type Counters, type MetricWindow, readBuckets, writeBuckets } from "../observe/metrics";
import {
  applicableBudgets,
  type BudgetSpec,
  budgetWindow,
  isShared,
  sharedBudgets,
} from "./budget";
import { passesAt, peek, tighter, windowEnd, windowKeys } from "./sliding-window";
import type {
  Admission,
  AdmissionRequest,
  BudgetView,
  LimitSpecs,
  LimitStore,
  UsageSnapshot,
  WindowResult,
} from "./store";

const TOTAL_QUOTA_TTL_MS = 400 * 86_400_000;
/**
 * How long an admission's mark lives: longer than any admission can take to reach the store
 * (its call is aborted after LIMITS_TIMEOUT_MS), short enough to cost little memory.
 */
const ADMISSION_MARK_TTL_MS = 60_000;

/**
 * Lua: a budget's state (hash KEYS h: `spent`, `held`, `expired`; sorted set z: one member
 * `<id>:<µUSD>` per live hold, scored by its expiry). A hold that expired unsettled (its
 * isolate died, its record could not be written) counts as spent in full, since the provider
 * may have billed all of it: its µUSD move from `held` to `spent` (and to `expired`, for
 * operators), and the field `x:<member>` remembers it, so a record that arrives later replaces
 * that amount (WRITE_LEDGER).
 */
const BUDGET_STATE = `
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
end`;

/**
 * The whole admission in one atomic EVAL, in contract order: the user's and the IP's sliding
 * windows (ratelimit's arithmetic and key layout; for IPv6 also the /48's window, KEYS 6-7, at
 * its own limit in ARGV[18], 0 for none), for anonymous callers the hourly and total
 * quotas (KEYS 8-10), then each applicable budget (a hash and a sorted set per budget, after
 * the quota keys). The windows count once they all pass (a quota refusal still counts in
 * them); nothing else counts unless everything passes. The hold is `decideHold` of
 * src/limits/budget.ts, line for line. KEYS[5] marks what this admission counted
 * ("1:<hold>" windows, "2:<hold>" windows and quota; "0" once cancelled, when the script
 * counts nothing). Returns {refused, user left, ip left, hourly left, total left, max_tokens,
 * hold, refusing budget's index, settled out, refusing window's current and previous count};
 * refused: 0 none, 1 user, 2 ip, 3 hourly quota, 4 total quota, 5 cancelled, 6 a budget, 7 the
 * IPv6 /48.
 */
const ADMIT = `${BUDGET_STATE}
if redis.call("EXISTS", KEYS[5]) == 1 then return {5, 0, 0} end
local now, markTtl = tonumber(ARGV[1]), ARGV[6]
local function num(key) return tonumber(redis.call("GET", key) or "0") end
local function used(current, previous, window)
  return num(current) + math.floor((1 - (now % window) / window) * num(previous))
end
local function count(key, window)
  if redis.call("INCR", key) == 1 then redis.call("PEXPIRE", key, window * 2 + 1000) end
end
local ul, uw, il, iw = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local wl = tonumber(ARGV[18])
local uu, iu = used(KEYS[1], KEYS[2], uw), used(KEYS[3], KEYS[4], iw)
local function refuse(code, a, b, c, d, k)
  return {code, a, b, c, d, 0, 0, 0, 0, num(KEYS[k]), num(KEYS[k + 1])}
end
if uu >= ul then return refuse(1, 0, math.max(0, il - iu), 0, 0, 1) end
if iu >= il then return refuse(2, ul - uu, 0, 0, 0, 3) end
if wl > 0 and used(KEYS[6], KEYS[7], iw) >= wl then return refuse(7, ul - uu, 0, 0, 0, 6) end
local function countWindows()
  count(KEYS[1], uw)
  count(KEYS[3], iw)
  if wl > 0 then count(KEYS[6], iw) end
  redis.call("SET", KEYS[5], "1:0", "PX", markTtl)
end
local anon, first = ARGV[7] == "1", 8
local hl, hw, qcap, hu, total = 0, 1, 0, 0, 0
local left = {ul - uu - 1, il - iu - 1, -1, -1}
if anon then
  hl, hw, qcap = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
  hu, total = used(KEYS[8], KEYS[9], hw), num(KEYS[10])
  left[3], left[4] = hl - hu - 1, qcap - total - 1
  if total >= qcap then
    countWindows()
    return refuse(4, left[1], left[2], math.max(0, hl - hu), 0, 8)
  end
  if hu >= hl then
    countWindows()
    return refuse(3, left[1], left[2], 0, qcap - total, 8)
  end
  first = 11
end
local cap, inCost, outPico, ceiling = tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15])
local function tokensFor(micro) return math.floor((micro - inCost) * 1000000 / outPico) end
local budgets = (#KEYS - first + 1) / 2
for i = 0, budgets - 1 do
  local limit = tonumber(ARGV[19 + 2 * i])
  local spent, held = budgetState(KEYS[first + 2 * i], KEYS[first + 2 * i + 1], now)
  local free = limit - spent - held
  if tokensFor(free) < 1 then
    local out = tokensFor(limit - spent) < 1 and 1 or 0
    return {6, left[1], left[2], left[3], left[4], 0, 0, i, out, 0, 0}
  end
  if free < cap then cap = free end
end
local maxTokens = math.min(ceiling, tokensFor(cap))
local hold = inCost + math.ceil(maxTokens * outPico / 1000000)
countWindows()
if anon then
  count(KEYS[8], hw)
  redis.call("INCR", KEYS[10])
  redis.call("PEXPIRE", KEYS[10], ARGV[11])
end
for i = 0, budgets - 1 do
  local h, z = KEYS[first + 2 * i], KEYS[first + 2 * i + 1]
  redis.call("HINCRBY", h, "held", hold)
  redis.call("ZADD", z, now + tonumber(ARGV[16]), ARGV[17] .. ":" .. hold)
  redis.call("PEXPIRE", h, ARGV[20 + 2 * i])
  redis.call("PEXPIRE", z, ARGV[20 + 2 * i])
end
redis.call("SET", KEYS[5], (anon and "2:" or "1:") .. hold, "PX", markTtl)
return {0, left[1], left[2], left[3], left[4], maxTokens, hold, 0, 0, 0, 0}
`;

/** Lua: takes one back from a counter, never below zero (DECR keeps the counter's TTL). */
const UNCOUNT = `
local function uncount(key)
  if tonumber(redis.call("GET", key) or "0") > 0 then redis.call("DECR", key) end
end`;

/**
 * Cancels an admission (the keys of ADMIT): undoes what its mark says it counted, never below
 * zero, releases its hold in every budget, and leaves the mark "0" so that the admission, should
 * it arrive later, counts nothing. ARGV: mark TTL, the quota keys' flag, the admission id, the
 * /48 window's flag.
 */
const CANCEL_ADMISSION = `${UNCOUNT}
local counted = redis.call("GET", KEYS[5]) or ""
redis.call("SET", KEYS[5], "0", "PX", ARGV[1])
local kind, hold = string.match(counted, "^(%d):(%d+)$")
if kind ~= "1" and kind ~= "2" then return 0 end
uncount(KEYS[1])
uncount(KEYS[3])
if ARGV[4] == "1" then uncount(KEYS[6]) end
if kind == "2" then
  uncount(KEYS[8])
  uncount(KEYS[10])
end
local first = ARGV[2] == "1" and 11 or 8
for i = first, #KEYS - 1, 2 do
  if redis.call("ZREM", KEYS[i + 1], ARGV[3] .. ":" .. hold) == 1 then
    redis.call("HINCRBY", KEYS[i], "held", -tonumber(hold))
  end
end
return 1
`;

/** Gives one quota unit back to the hourly bucket (KEYS[1]) and the total (KEYS[2]), never below zero. */
const REFUND_QUOTA = `${UNCOUNT}
uncount(KEYS[1])
uncount(KEYS[2])
return 1
`;

/**
 * Stores a record once per record id, adds its cost to the user's spend counters, and settles
 * its hold in each budget (KEYS after the four ledger keys, a hash and a sorted set each): the
 * hold (ARGV[4], "<id>:<µUSD>", or "" for none) is released if it is still live, and the cost
 * becomes spent; if it expired unsettled (counted as spent in full), the cost replaces that
 * amount. All or nothing, once: a replay finds the record id and changes nothing.
 */
const WRITE_LEDGER = `
if redis.call("SET", KEYS[1], ARGV[1], "NX", "EX", ARGV[2]) == false then return 0 end
local cost = tonumber(ARGV[3])
redis.call("INCRBY", KEYS[2], cost)
redis.call("INCR", KEYS[3])
redis.call("INCRBY", KEYS[4], cost)
redis.call("EXPIRE", KEYS[4], 2678400)
local member = ARGV[4]
local hold = tonumber(string.match(member, ":(%d+)$") or "0")
for i = 5, #KEYS - 1, 2 do
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
  redis.call("PEXPIRE", KEYS[i], ARGV[5])
end
return 1
`;

/**
 * Reads budgets (KEYS: a hash and a sorted set each), counting expired holds as spent:
 * {spent, held, expired, ...}.
 */
const READ_BUDGETS = `${BUDGET_STATE}
local out = {}
for i = 1, #KEYS - 1, 2 do
  local spent, held = budgetState(KEYS[i], KEYS[i + 1], tonumber(ARGV[1]))
  out[#out + 1] = spent
  out[#out + 1] = held
  out[#out + 1] = tonumber(redis.call("HGET", KEYS[i], "expired") or "0")
end
return out
`;

/** Adds field/value pairs (ARGV after the TTLs) to each bucket hash in KEYS. */
const RECORD_METRICS = `
local n = #KEYS
for k = 1, n do
  for i = n + 1, #ARGV, 2 do redis.call("HINCRBY", KEYS[k], ARGV[i], ARGV[i + 1]) end
  redis.call("PEXPIRE", KEYS[k], ARGV[k])
end
return 1
`;

/** One window's result from what the admission script said was left in it. */
function windowResult(
  success: boolean,
  left: number,
  spec: WindowSpec,
  now: number,
  counts: [number, number] = [0, 0],
): WindowResult {
  return {
    success,
    limit: spec.limit,
    remaining: success ? Math.max(0, left) : 0,
    reset: windowEnd(now, spec),
    ...(success ? {} : { retryAt: passesAt(counts[0], counts[1], now, spec) }),
  };
}

/** Builds the Upstash store; `fetchTimeoutMs` aborts any REST call that hangs; keys start with `PREFIX`. */
export function upstashStore(
  conn: { url: string; token: string },
  specs: LimitSpecs,
  fetchTimeoutMs: number,
  PREFIX = "mb",
): LimitStore {
  const redis = new Redis({
    url: conn.url,
    token: conn.token,
    // One command per decision: auto-pipelining would only add its proxy and two microtask hops.
    enableAutoPipelining: false,
    enableTelemetry: false,
    // Every value read back is a number or our own JSON; base64 would only cost decoding.
    responseEncoding: false,
    // One quick retry on a network error; the caller's deadline bounds it anyway. A retried
    // admission whose first attempt did commit finds its own mark and is refused (503, then
    // cancelled), so nothing is ever counted twice.
    retry: { retries: 1, backoff: () => 25 },
    // A function, so each request gets its own deadline and an abort throws (a static
    // signal would make the client answer "Aborted" as if it were a result).
    signal: () => AbortSignal.timeout(fetchTimeoutMs),
  });
  // Sent as EVALSHA (the script's SHA-1, computed once), EVAL only when redis does not know it
  // yet: a request carries a few dozen bytes instead of the whole script.
  const scripts = {
    admit: redis.createScript<number[]>(ADMIT),
    cancelAdmission: redis.createScript(CANCEL_ADMISSION),
    refundQuota: redis.createScript(REFUND_QUOTA),
    writeLedger: redis.createScript<number>(WRITE_LEDGER),
    readBudgets: redis.createScript<number[]>(READ_BUDGETS),
    recordMetrics: redis.createScript(RECORD_METRICS),
  };
  // One window, one decision (minting, usage reads): ratelimit as it is. timeout 0: never
  // ratelimit's fail-open answer; ephemeralCache off: every decision is the store's.
  const single = (name: string, spec: WindowSpec) => {
    const limiter = new Ratelimit({
      redis,
      prefix: `${PREFIX}:rl:${name}`,
      limiter: Ratelimit.slidingWindow(spec.limit, `${spec.windowMs} ms`),
      timeout: 0,
      ephemeralCache: false,
      analytics: false,
    });
    return async (key: string): Promise<WindowResult> => {
      const r = await limiter.limit(key);
      return {
        success: r.success,
        limit: r.limit || spec.limit,
        remaining: Math.max(0, r.remaining),
        reset: r.reset,
      };
    };
  };
  /**
   * Minting per /64 and, for IPv6, per /48: both asked at once (one round trip in time); the
   * tighter answer stands. A refusal by one still counts in the other: it can only refuse more.
   */
  const both =
    (
      narrow: (key: string) => Promise<WindowResult>,
      wide: (key: string) => Promise<WindowResult>,
    ) =>
    async (ipKey: string, wideKey: string | null): Promise<WindowResult> => {
      const [a, b] = await Promise.all([narrow(ipKey), wideKey ? wide(wideKey) : null]);
      return b ? tighter(a, b) : a;
    };
  const userWindow = (userKey: string, now: number) =>
    windowKeys(`${PREFIX}:rl:user:${userKey}`, specs.user, now);
  const ipWindow = (ipKey: string, now: number) =>
    windowKeys(`${PREFIX}:rl:ip:${ipKey}`, specs.ip, now);
  const wideWindow = (wideKey: string, now: number) =>
    windowKeys(`${PREFIX}:rl:ip48:${wideKey}`, specs.ipWide, now);
  const quotaKeys = (userKey: string, now: number) => {
    const base = `${PREFIX}:quota:${userKey}`;
    return [...windowKeys(`${base}:hourly`, specs.anonHourly, now), `${base}:total`];
  };
  /** A budget's hash and sorted set for the window `at` falls in (own budgets per user). */
  const budgetKeys = (b: BudgetSpec, userKey: string, at: number) => {
    const base = `${PREFIX}:budget:${b.name}:${isShared(b.name) ? "all" : userKey}`;
    const id = budgetWindow(b, at).id;
    return [`${base}:${id}`, `${base}:${id}:holds`];
  };
  const budgetsOf = (anonymous: boolean) => applicableBudgets(specs.budgets, anonymous);
  /**
   * ADMIT's keys: the user's and the IP's windows, the admission's mark, the /48's window (for
   * IPv4 a pair nothing touches), (anonymous) the quotas, the budgets.
   */
  const admissionKeys = (r: AdmissionRequest) => [
    ...userWindow(r.userKey, r.at),
    ...ipWindow(r.ipKey, r.at),
    `${PREFIX}:admission:${r.id}`,
    ...(r.wideIpKey ? wideWindow(r.wideIpKey, r.at) : ipWindow(r.ipKey, r.at)),
    ...(r.anonymous ? quotaKeys(r.userKey, r.at) : []),
    ...budgetsOf(r.anonymous).flatMap((b) => budgetKeys(b, r.userKey, r.at)),
  ];
  /** A budget's keys outlive its window by the longest a hold can wait for its settlement. */
  const budgetTtl = (b: BudgetSpec, now: number) =>
    budgetWindow(b, now).endsAt - now + specs.holdTtlMs + 3_600_000;
  const readBudgets = async (list: BudgetSpec[], userKey: string, now: number) => {
    if (list.length === 0) return [];
    const keys = list.flatMap((b) => budgetKeys(b, userKey, now));
    const values = await scripts.readBudgets.exec(keys, [String(now)]);
    return list.map(
      (b, i): BudgetView => ({
        name: b.name,
        limit: b.limitMicroUsd,
        spent: Number(values[3 * i] ?? 0),
        held: Number(values[3 * i + 1] ?? 0),
        expired: Number(values[3 * i + 2] ?? 0),
        endsAt: budgetWindow(b, now).endsAt,
      }),
    );
  };
  const spendKeys = (userKey: string, day: string) => ({
    total: `${PREFIX}:spend:${userKey}:total`,
    streams: `${PREFIX}:spend:${userKey}:streams`,
    day: `${PREFIX}:spend:${userKey}:day:${day}`,
  });

  return {
    kind: "upstash",
    async admit(request): Promise<Admission> {
      const { at: now, anonymous, price } = request;
      const budgets = budgetsOf(anonymous);
      const args = [now, specs.user.limit, specs.user.windowMs, specs.ip.limit, specs.ip.windowMs];
      args.push(ADMISSION_MARK_TTL_MS, anonymous ? 1 : 0);
      args.push(specs.anonHourly.limit, specs.anonHourly.windowMs, specs.anonTotal);
      args.push(TOTAL_QUOTA_TTL_MS, price.capMicroUsd, price.inputMicroUsd, price.outputPicoUsd);
      args.push(price.maxTokensCeiling, specs.holdTtlMs);
      const argv = [...args.map(String), request.id];
      argv.push(String(request.wideIpKey ? specs.ipWide.limit : 0));
      for (const b of budgets) argv.push(String(b.limitMicroUsd), String(budgetTtl(b, now)));
      const answer = (await scripts.admit.exec(admissionKeys(request), argv)) as number[];
      const [refused, userLeft = 0, ipLeft = 0, hourlyLeft = 0, totalLeft = 0] = answer;
      const [maxTokens = 0, hold = 0, refusedBy = 0, settledOut = 0] = answer.slice(5);
      const counts: [number, number] = [answer[9] ?? 0, answer[10] ?? 0];
      if (refused === 5) throw new Error("the admission was cancelled before it reached the store");
      const user = windowResult(refused !== 1, userLeft, specs.user, now, counts);
      // The /48's refusal is the address's: per-IP, with its own wider limit.
      const ip =
        refused === 7
          ? windowResult(false, 0, specs.ipWide, now, counts)
          : windowResult(refused !== 2, ipLeft, specs.ip, now, counts);
      if (refused === 1 || refused === 2 || refused === 7) {
        return { user, ip, quota: null, budget: null };
      }
      const quota = anonymous
        ? {
            success: refused !== 3 && refused !== 4,
            exhausted:
              refused === 3 ? ("hourly" as const) : refused === 4 ? ("total" as const) : null,
            hourly: windowResult(refused !== 3, hourlyLeft, specs.anonHourly, now, counts),
            total: { limit: specs.anonTotal, remaining: totalLeft, success: refused !== 4 },
          }
        : null;
      if (refused === 3 || refused === 4) return { user, ip, quota, budget: null };
      if (refused === 6) {
        const b = budgets[refusedBy] as BudgetSpec;
        const budget = {
          ok: false as const,
          budget: b.name,
          settledOut: settledOut === 1,
          endsAt: budgetWindow(b, now).endsAt,
        };
        return { user, ip, quota, budget };
      }
      const ticket = { id: request.id, at: now, microUsd: hold, anonymous, shard: 0 };
      return { user, ip, quota, budget: { ok: true, maxTokens, ticket } };
    },
    async cancelAdmission(request) {
      await scripts.cancelAdmission.exec(admissionKeys(request), [
        String(ADMISSION_MARK_TTL_MS),
        request.anonymous ? "1" : "0",
        request.id,
        request.wideIpKey ? "1" : "0",
      ]);
    },
    async refundQuota(userKey, spentAt) {
      // The unit goes back to the bucket it was taken from, never below zero.
      const [hourly = "", , total = ""] = quotaKeys(userKey, spentAt);
      await scripts.refundQuota.exec([hourly, total], []);
    },
    hitSessionMint: both(
      single("mint", specs.sessionsPerIp),
      single("mint48", specs.sessionsPerIpWide),
    ),
    hitUsageRead: single("usage", specs.usageReads),
    async usage(userKey, ipKey, anonymous): Promise<UsageSnapshot> {
      const now = Date.now();
      const [userKeys, ipKeys] = [userWindow(userKey, now), ipWindow(ipKey, now)];
      const spend = spendKeys(userKey, utcDay(now));
      const values = await redis.mget<(string | number | null)[]>(
        ...userKeys,
        ...ipKeys,
        ...quotaKeys(userKey, now),
        spend.total,
        spend.streams,
        spend.day,
      );
      const n = (i: number) => Number(values[i] ?? 0);
      const [own] = await readBudgets(
        budgetsOf(anonymous).filter((b) => !isShared(b.name)),
        userKey,
        now,
      );
      return {
        budget: own ?? null,
        user: peek(n(0), n(1), now, specs.user),
        ip: peek(n(2), n(3), now, specs.ip),
        quota: anonymous
          ? {
              hourly: peek(n(4), n(5), now, specs.anonHourly),
              total: { limit: specs.anonTotal, remaining: Math.max(0, specs.anonTotal - n(6)) },
            }
          : null,
        spend: { totalUsd: n(7) / 1e6, streams: n(8), todayUsd: n(9) / 1e6 },
      };
    },
    async writeLedger(record: LedgerRecord) {
      const spend = spendKeys(record.userKey, utcDay(record.startedAt));
      // The budgets of the stream's admission (its windows), whether or not it held.
      const at = record.hold?.at ?? record.startedAt;
      const anonymous = record.hold?.anonymous ?? record.userKey.startsWith("anonymous:");
      const budgets = budgetsOf(anonymous).flatMap((b) => budgetKeys(b, record.userKey, at));
      const member = record.hold ? `${record.hold.id}:${record.hold.microUsd}` : "";
      const written = await scripts.writeLedger.exec(
        [`${PREFIX}:ledger:${record.recordId}`, spend.total, spend.streams, spend.day, ...budgets],
        [
          JSON.stringify(record),
          String(LEDGER_RETENTION_SECONDS),
          String(record.costMicroUsd),
          member,
          String(2 * 86_400_000 + specs.holdTtlMs),
        ],
      );
      return written === 1 ? "written" : "duplicate";
    },
    sharedBudgets: (now) => readBudgets(sharedBudgets(specs.budgets), "", now),
    async recordMetrics(counters: Counters, now: number) {
      const buckets = writeBuckets(now);
      await scripts.recordMetrics.exec(
        buckets.map((b) => `${PREFIX}:metrics:${b.key}`),
        [
          ...buckets.map((b) => String(b.ttlMs)),
          ...Object.entries(counters).flatMap(([f, v]) => [f, String(v)]),
        ],
      );
    },
    async readMetrics(now: number) {
      const windows = Object.entries(readBuckets(now)) as [MetricWindow, string[]][];
      // Every bucket of every window in one /pipeline request.
      const pipeline = redis.pipeline();
      for (const [, keys] of windows)
        for (const k of keys) pipeline.hgetall(`${PREFIX}:metrics:${k}`);
      const hashes = (await pipeline.exec()) as (Record<string, number> | null)[];
      const out = {} as Record<MetricWindow, Counters>;
      let next = 0;
      for (const [window, keys] of windows) {
        const sum: Counters = {};
        for (const h of hashes.slice(next, next + keys.length))
          for (const [f, v] of Object.entries(h ?? {})) sum[f] = (sum[f] ?? 0) + Number(v);
        next += keys.length;
        out[window] = sum;
      }
      return out;
    },
  };
}
