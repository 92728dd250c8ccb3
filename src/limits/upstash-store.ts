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
import { peek, windowEnd, windowKeys } from "./sliding-window";
import type {
  Admission,
  AdmissionRequest,
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
 * The whole admission in one atomic EVAL: the user's and the IP's sliding windows (ratelimit's
 * arithmetic and key layout), then, for anonymous callers (8 keys), the hourly and total quotas.
 * Nothing is counted unless both windows pass; the quota is spent only when it allows it.
 * KEYS[5] marks what this admission counted ("1" windows, "2" windows and quota; "0" once
 * cancelled, when the script counts nothing). Returns {refused, user left, ip left[, hourly
 * left, total left]}; refused: 0 none, 1 user, 2 ip, 3 hourly quota, 4 total quota, 5 cancelled.
 */
const ADMIT = `
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
local uu, iu = used(KEYS[1], KEYS[2], uw), used(KEYS[3], KEYS[4], iw)
if uu >= ul then return {1, 0, math.max(0, il - iu)} end
if iu >= il then return {2, ul - uu, 0} end
count(KEYS[1], uw)
count(KEYS[3], iw)
redis.call("SET", KEYS[5], "1", "PX", markTtl)
if #KEYS == 5 then return {0, ul - uu - 1, il - iu - 1} end
local hl, hw, cap, ttl = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10]
local hu, total = used(KEYS[6], KEYS[7], hw), num(KEYS[8])
if total >= cap then return {4, ul - uu - 1, il - iu - 1, math.max(0, hl - hu), 0} end
if hu >= hl then return {3, ul - uu - 1, il - iu - 1, 0, cap - total} end
count(KEYS[6], hw)
redis.call("INCR", KEYS[8])
redis.call("PEXPIRE", KEYS[8], ttl)
redis.call("SET", KEYS[5], "2", "PX", markTtl)
return {0, ul - uu - 1, il - iu - 1, hl - hu - 1, cap - total - 1}
`;

/** Lua: takes one back from a counter, never below zero (DECR keeps the counter's TTL). */
const UNCOUNT = `
local function uncount(key)
  if tonumber(redis.call("GET", key) or "0") > 0 then redis.call("DECR", key) end
end`;

/**
 * Cancels an admission (the keys of ADMIT): undoes what its mark says it counted, never below
 * zero, and leaves the mark "0" so that the admission, should it arrive later, counts nothing.
 */
const CANCEL_ADMISSION = `${UNCOUNT}
local counted = redis.call("GET", KEYS[5])
redis.call("SET", KEYS[5], "0", "PX", ARGV[1])
if counted ~= "1" and counted ~= "2" then return 0 end
uncount(KEYS[1])
uncount(KEYS[3])
if counted == "2" then
  uncount(KEYS[6])
  uncount(KEYS[8])
end
return 1
`;

/** Gives one quota unit back to the hourly bucket (KEYS[1]) and the total (KEYS[2]), never below zero. */
const REFUND_QUOTA = `${UNCOUNT}
uncount(KEYS[1])
uncount(KEYS[2])
return 1
`;

/** Stores a record once per record id and adds its cost to the user's spend counters. */
const WRITE_LEDGER = `
if redis.call("SET", KEYS[1], ARGV[1], "NX", "EX", ARGV[2]) == false then return 0 end
redis.call("INCRBY", KEYS[2], ARGV[3])
redis.call("INCR", KEYS[3])
redis.call("INCRBY", KEYS[4], ARGV[3])
redis.call("EXPIRE", KEYS[4], 2678400)
return 1
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
function windowResult(success: boolean, left: number, spec: WindowSpec, now: number): WindowResult {
  return {
    success,
    limit: spec.limit,
    remaining: success ? Math.max(0, left) : 0,
    reset: windowEnd(now, spec),
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
  const userWindow = (userKey: string, now: number) =>
    windowKeys(`${PREFIX}:rl:user:${userKey}`, specs.user, now);
  const ipWindow = (ipKey: string, now: number) =>
    windowKeys(`${PREFIX}:rl:ip:${ipKey}`, specs.ip, now);
  const quotaKeys = (userKey: string, now: number) => {
    const base = `${PREFIX}:quota:${userKey}`;
    return [...windowKeys(`${base}:hourly`, specs.anonHourly, now), `${base}:total`];
  };
  /** ADMIT's keys: the two windows, the admission's mark, then (anonymous) the quotas. */
  const admissionKeys = (r: AdmissionRequest) => [
    ...userWindow(r.userKey, r.at),
    ...ipWindow(r.ipKey, r.at),
    `${PREFIX}:admission:${r.id}`,
    ...(r.anonymous ? quotaKeys(r.userKey, r.at) : []),
  ];
  const spendKeys = (userKey: string, day: string) => ({
    total: `${PREFIX}:spend:${userKey}:total`,
    streams: `${PREFIX}:spend:${userKey}:streams`,
    day: `${PREFIX}:spend:${userKey}:day:${day}`,
  });

  return {
    kind: "upstash",
    async admit(request): Promise<Admission> {
      const { at: now, anonymous } = request;
      const args = [now, specs.user.limit, specs.user.windowMs, specs.ip.limit, specs.ip.windowMs];
      args.push(ADMISSION_MARK_TTL_MS);
      if (anonymous) {
        args.push(specs.anonHourly.limit, specs.anonHourly.windowMs, specs.anonTotal);
        args.push(TOTAL_QUOTA_TTL_MS);
      }
      const [refused, userLeft, ipLeft, hourlyLeft = 0, totalLeft = 0] = (await scripts.admit.exec(
        admissionKeys(request),
        args.map(String),
      )) as number[];
      if (refused === 5) throw new Error("the admission was cancelled before it reached the store");
      const user = windowResult(refused !== 1, userLeft ?? 0, specs.user, now);
      const ip = windowResult(refused !== 2, ipLeft ?? 0, specs.ip, now);
      if (!anonymous || refused === 1 || refused === 2) return { user, ip, quota: null };
      return {
        user,
        ip,
        quota: {
          success: refused === 0,
          exhausted: refused === 3 ? "hourly" : refused === 4 ? "total" : null,
          hourly: windowResult(refused !== 3, hourlyLeft, specs.anonHourly, now),
          total: { limit: specs.anonTotal, remaining: totalLeft, success: refused !== 4 },
        },
      };
    },
    async cancelAdmission(request) {
      await scripts.cancelAdmission.exec(admissionKeys(request), [String(ADMISSION_MARK_TTL_MS)]);
    },
    async refundQuota(userKey, spentAt) {
      // The unit goes back to the bucket it was taken from, never below zero.
      const [hourly = "", , total = ""] = quotaKeys(userKey, spentAt);
      await scripts.refundQuota.exec([hourly, total], []);
    },
    hitSessionMint: single("mint", specs.sessionsPerIp),
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
      return {
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
      const written = await scripts.writeLedger.exec(
        [`${PREFIX}:ledger:${record.recordId}`, spend.total, spend.streams, spend.day],
        [JSON.stringify(record), String(LEDGER_RETENTION_SECONDS), String(record.costMicroUsd)],
      );
      return written === 1 ? "written" : "duplicate";
    },
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
