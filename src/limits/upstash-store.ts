/**
 * @module The LimitStore adapter over Upstash Redis (REST). Rate windows use `@upstash/ratelimit`;
 * the quota and ledger steps are one small Lua script each, so every decision is one atomic
 * EVAL. Commands issued in the same tick share one `/pipeline` request (auto-pipelining).
 */
import { Ratelimit } from "@upstash/ratelimit";
import { Redis } from "@upstash/redis/cloudflare";
import type { WindowSpec } from "../config";
import { LEDGER_RETENTION_SECONDS, type LedgerRecord, utcDay } from "../ledger/record";
import { type Counters, type MetricWindow, readBuckets, writeBuckets } from "../observe/metrics";
import { bucketOf, peek, windowKeys } from "./sliding-window";
import type { LimitSpecs, LimitStore, QuotaResult, UsageSnapshot, WindowResult } from "./store";

const TOTAL_QUOTA_TTL_MS = 400 * 86_400_000;

/** Hourly (sliding, ratelimit's arithmetic) and total quota, spent together or not at all. */
const SPEND_QUOTA = `
local limit, now, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cap, ttl, rate = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local cur = tonumber(redis.call("GET", KEYS[1]) or "0")
local prev = tonumber(redis.call("GET", KEYS[2]) or "0")
local weighted = math.floor((1 - (now % window) / window) * prev)
local used = tonumber(redis.call("GET", KEYS[3]) or "0")
if rate < 0 then
  if cur > 0 then
    redis.call("DECR", KEYS[1])
    redis.call("PEXPIRE", KEYS[1], window * 2 + 1000)
  end
  if used > 0 then redis.call("DECR", KEYS[3]) end
  return {1, 0, 0, 0}
end
if used >= cap then return {0, 2, math.max(0, limit - cur - weighted), 0} end
if cur + weighted >= limit then return {0, 1, 0, cap - used} end
cur = redis.call("INCR", KEYS[1])
if cur == 1 then redis.call("PEXPIRE", KEYS[1], window * 2 + 1000) end
used = redis.call("INCR", KEYS[3])
redis.call("PEXPIRE", KEYS[3], ttl)
return {1, 0, math.max(0, limit - cur - weighted), cap - used}
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

/** The Redis commands this adapter uses: narrowed so a test double or a new client is easy. */
export type UpstashClient = Pick<Redis, "eval" | "mget" | "hgetall">;

function toResult(raw: unknown, spec: WindowSpec): WindowResult {
  const r = raw as { success: boolean; limit: number; remaining: number; reset: number };
  return {
    success: r.success,
    limit: r.limit || spec.limit,
    remaining: Math.max(0, r.remaining),
    reset: r.reset,
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
    enableAutoPipelining: true,
    enableTelemetry: false,
    // One quick retry on a network error; the caller's deadline bounds it anyway.
    retry: { retries: 1, backoff: () => 25 },
    // A function, so each request gets its own deadline and an abort throws (a static
    // signal would make the client answer "Aborted" as if it were a result).
    signal: () => AbortSignal.timeout(fetchTimeoutMs),
  });
  // timeout 0: never ratelimit's fail-open answer; ephemeralCache off: every decision is the store's.
  const limiter = (name: string, spec: WindowSpec) =>
    new Ratelimit({
      redis,
      prefix: `${PREFIX}:rl:${name}`,
      limiter: Ratelimit.slidingWindow(spec.limit, `${spec.windowMs} ms`),
      timeout: 0,
      ephemeralCache: false,
      analytics: false,
    });
  const user = limiter("user", specs.user);
  const ip = limiter("ip", specs.ip);
  const mint = limiter("mint", specs.sessionsPerIp);

  const quotaKeys = (userKey: string, now: number) => {
    const base = `${PREFIX}:quota:${userKey}`;
    return [...windowKeys(`${base}:hourly`, specs.anonHourly, now), `${base}:total`];
  };
  const quotaArgs = (now: number, rate: number) => [
    String(specs.anonHourly.limit),
    String(now),
    String(specs.anonHourly.windowMs),
    String(specs.anonTotal),
    String(TOTAL_QUOTA_TTL_MS),
    String(rate),
  ];
  const spendKeys = (userKey: string, day: string) => ({
    total: `${PREFIX}:spend:${userKey}:total`,
    streams: `${PREFIX}:spend:${userKey}:streams`,
    day: `${PREFIX}:spend:${userKey}:day:${day}`,
  });

  return {
    kind: "upstash",
    async hitRateLimits(userKey, ipKey) {
      const [u, i] = await Promise.all([user.limit(userKey), ip.limit(ipKey)]);
      return { user: toResult(u, specs.user), ip: toResult(i, specs.ip) };
    },
    async spendQuota(userKey, now): Promise<QuotaResult> {
      const [ok, which, hourlyLeft, totalLeft] = (await redis.eval(
        SPEND_QUOTA,
        quotaKeys(userKey, now),
        quotaArgs(now, 1),
      )) as [number, number, number, number];
      const reset = (bucketOf(now, specs.anonHourly) + 1) * specs.anonHourly.windowMs;
      return {
        success: ok === 1,
        exhausted: which === 1 ? "hourly" : which === 2 ? "total" : null,
        hourly: {
          success: which !== 1,
          limit: specs.anonHourly.limit,
          remaining: hourlyLeft,
          reset,
        },
        total: { limit: specs.anonTotal, remaining: totalLeft, success: which !== 2 },
      };
    },
    async refundQuota(userKey, spentAt) {
      // The unit goes back to the bucket it was taken from, never below zero.
      await redis.eval(SPEND_QUOTA, quotaKeys(userKey, spentAt), quotaArgs(spentAt, -1));
    },
    async hitSessionMint(ipKey) {
      return toResult(await mint.limit(ipKey), specs.sessionsPerIp);
    },
    async usage(userKey, ipKey, anonymous): Promise<UsageSnapshot> {
      const now = Date.now();
      const [userKeys, ipKeys] = [
        windowKeys(`${PREFIX}:rl:user:${userKey}`, specs.user, now),
        windowKeys(`${PREFIX}:rl:ip:${ipKey}`, specs.ip, now),
      ];
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
      const written = await redis.eval(
        WRITE_LEDGER,
        [`${PREFIX}:ledger:${record.recordId}`, spend.total, spend.streams, spend.day],
        [JSON.stringify(record), String(LEDGER_RETENTION_SECONDS), String(record.costMicroUsd)],
      );
      return written === 1 ? "written" : "duplicate";
    },
    async recordMetrics(counters: Counters, now: number) {
      const buckets = writeBuckets(now);
      await redis.eval(
        RECORD_METRICS,
        buckets.map((b) => `${PREFIX}:metrics:${b.key}`),
        [
          ...buckets.map((b) => String(b.ttlMs)),
          ...Object.entries(counters).flatMap(([f, v]) => [f, String(v)]),
        ],
      );
    },
    async readMetrics(now: number) {
      const windows = Object.entries(readBuckets(now)) as [MetricWindow, string[]][];
      // Issued in one tick: auto-pipelining sends them as one request.
      const hashes = await Promise.all(
        windows.map(([, keys]) =>
          Promise.all(
            keys.map((k) => redis.hgetall<Record<string, number>>(`${PREFIX}:metrics:${k}`)),
          ),
        ),
      );
      const out = {} as Record<MetricWindow, Counters>;
      windows.forEach(([window], i) => {
        const sum: Counters = {};
        for (const h of hashes[i] ?? [])
          for (const [f, v] of Object.entries(h ?? {})) sum[f] = (sum[f] ?? 0) + Number(v);
        out[window] = sum;
      });
      return out;
    },
  };
}
