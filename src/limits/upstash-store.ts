/**
 * @module The LimitStore adapter over Upstash Redis (REST). Each decision is one atomic EVAL, so
 * one round trip: the admission (both rate windows and the anonymous quotas, which
 * `@upstash/ratelimit` cannot decide together; upstash-admit.ts) and the ledger are small Lua
 * scripts with ratelimit's sliding-window arithmetic and key layout (upstash-keys.ts); minting
 * and usage reads, one window each, are `@upstash/ratelimit` itself. Reading the metrics is one
 * `/pipeline` request.
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
import { peek, tighter } from "./sliding-window";
import {
  type BudgetView,
  type Clock,
  type ClockedStore,
  type LimitSpecs,
  systemClock,
  type UsageSnapshot,
  type WindowResult,
} from "./store";
import { admit, cancelAdmission } from "./upstash-admit";
import { type UpstashKeys, upstashKeys } from "./upstash-keys";
import { byName, LEDGER_ARGS, LEDGER_KEYS, SCRIPTS } from "./upstash-protocol";

/** How the Upstash store is built: each has a default but the REST call's deadline. */
export interface UpstashOptions {
  /** Aborts any REST call that hangs this long, ms. */
  timeoutMs: number;
  /** Every key starts with it. */
  prefix?: string;
  /** The time of the calls that carry none of their own (usage reads). */
  now?: Clock;
}

/** What every call of one store works with: its client, scripts, keys, limits and clock. */
interface Upstash {
  redis: Redis;
  scripts: ReturnType<typeof loadScripts>;
  keys: UpstashKeys;
  specs: LimitSpecs;
  now: Clock;
  /** The budgets that apply to a caller. */
  budgetsOf(anonymous: boolean): BudgetSpec[];
}

/** Builds the Upstash store. */
export function upstashStore(
  conn: { url: string; token: string },
  specs: LimitSpecs,
  { timeoutMs, prefix = "mb", now = systemClock }: UpstashOptions,
): ClockedStore {
  const redis = restClient(conn, timeoutMs);
  const scripts = loadScripts(redis);
  const keys = upstashKeys(prefix, specs);
  const budgetsOf = (anonymous: boolean) => applicableBudgets(specs.budgets, anonymous);
  const u: Upstash = { redis, scripts, keys, specs, now, budgetsOf };
  const admission = { specs, keys, admit: scripts.admit, cancel: scripts.cancelAdmission };
  const single = (name: string, spec: WindowSpec) => singleWindow(redis, keys.single(name), spec);
  return {
    kind: "upstash",
    now,
    admit: (r) => admit(admission, r, budgetsOf(r.anonymous)),
    cancelAdmission: (r) => cancelAdmission(admission, r, budgetsOf(r.anonymous)),
    async refundQuota(userKey, spentAt) {
      // The unit goes back to the bucket it was taken from, never below zero.
      const [hourly = "", , total = ""] = keys.quota(userKey, spentAt);
      await scripts.refundQuota.exec([hourly, total], []);
    },
    hitSessionMint: both(
      single("mint", specs.sessionsPerIp),
      single("mint48", specs.sessionsPerIpWide),
    ),
    hitUsageRead: single("usage", specs.usageReads),
    usage: (userKey, ipKey, anonymous) => usage(u, userKey, ipKey, anonymous),
    writeLedger: (record) => writeLedger(u, record),
    sharedBudgets: (at) => readBudgets(u, sharedBudgets(specs.budgets), "", at),
    recordMetrics: (counters, at) => recordMetrics(u, counters, at),
    readMetrics: (at) => readMetrics(u, at),
  };
}

/** The REST client: one command per request, a deadline on each, one quick retry. */
function restClient(conn: { url: string; token: string }, timeoutMs: number): Redis {
  return new Redis({
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
    signal: () => AbortSignal.timeout(timeoutMs),
  });
}

/**
 * The scripts, each sent as EVALSHA (its SHA-1, computed once), EVAL only when redis does not
 * know it yet: a request carries a few dozen bytes instead of the whole script.
 */
function loadScripts(redis: Redis) {
  return {
    admit: redis.createScript<number[]>(SCRIPTS.admit),
    cancelAdmission: redis.createScript(SCRIPTS.cancelAdmission),
    refundQuota: redis.createScript(SCRIPTS.refundQuota),
    writeLedger: redis.createScript<number>(SCRIPTS.writeLedger),
    readBudgets: redis.createScript<number[]>(SCRIPTS.readBudgets),
    recordMetrics: redis.createScript(SCRIPTS.recordMetrics),
  };
}

/**
 * One window, one decision (minting, usage reads): ratelimit as it is. timeout 0: never
 * ratelimit's fail-open answer; ephemeralCache off: every decision is the store's.
 */
function singleWindow(redis: Redis, prefix: string, spec: WindowSpec) {
  const limiter = new Ratelimit({
    redis,
    prefix,
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
}

/**
 * Minting per /64 and, for IPv6, per /48: both asked at once (one round trip in time); the
 * tighter answer stands. A refusal by one still counts in the other: it can only refuse more.
 */
const both =
  (narrow: (key: string) => Promise<WindowResult>, wide: (key: string) => Promise<WindowResult>) =>
  async (ipKey: string, wideKey: string | null): Promise<WindowResult> => {
    const [a, b] = await Promise.all([narrow(ipKey), wideKey ? wide(wideKey) : null]);
    return b ? tighter(a, b) : a;
  };

/** The state of each budget of `list` (`userKey`'s own ones, or the shared) at `at`. */
async function readBudgets(
  u: Upstash,
  list: BudgetSpec[],
  userKey: string,
  at: number,
): Promise<BudgetView[]> {
  if (list.length === 0) return [];
  const keys = list.flatMap((b) => u.keys.budget(b, userKey, at));
  const values = await u.scripts.readBudgets.exec(keys, [String(at)]);
  return list.map(
    (b, i): BudgetView => ({
      name: b.name,
      limit: b.limitMicroUsd,
      spent: Number(values[3 * i] ?? 0),
      held: Number(values[3 * i + 1] ?? 0),
      expired: Number(values[3 * i + 2] ?? 0),
      endsAt: budgetWindow(b, at).endsAt,
    }),
  );
}

/** The caller's windows, quotas, spend and own budget, now, without changing them. */
async function usage(
  u: Upstash,
  userKey: string,
  ipKey: string,
  anonymous: boolean,
): Promise<UsageSnapshot> {
  const { specs } = u;
  const at = u.now();
  const spend = u.keys.spend(userKey, utcDay(at));
  const values = await u.redis.mget<(string | number | null)[]>(
    ...u.keys.userWindow(userKey, at),
    ...u.keys.ipWindow(ipKey, at),
    ...u.keys.quota(userKey, at),
    spend.total,
    spend.streams,
    spend.day,
  );
  const n = (i: number) => Number(values[i] ?? 0);
  const own = u.budgetsOf(anonymous).filter((b) => !isShared(b.name));
  const [budget] = await readBudgets(u, own, userKey, at);
  return {
    budget: budget ?? null,
    user: peek(n(0), n(1), at, specs.user),
    ip: peek(n(2), n(3), at, specs.ip),
    quota: anonymous
      ? {
          hourly: peek(n(4), n(5), at, specs.anonHourly),
          total: { limit: specs.anonTotal, remaining: Math.max(0, specs.anonTotal - n(6)) },
        }
      : null,
    spend: { totalUsd: n(7) / 1e6, streams: n(8), todayUsd: n(9) / 1e6 },
  };
}

/** Writes the record and settles its hold in the budgets of its admission, once per record. */
async function writeLedger(u: Upstash, record: LedgerRecord): Promise<"written" | "duplicate"> {
  const spend = u.keys.spend(record.userKey, utcDay(record.startedAt));
  // The budgets of the stream's admission (its windows), whether or not it held.
  const at = record.hold?.at ?? record.startedAt;
  const anonymous = record.hold?.anonymous ?? record.userKey.startsWith("anonymous:");
  const budgets = u.budgetsOf(anonymous).flatMap((b) => u.keys.budget(b, record.userKey, at));
  const member = record.hold ? `${record.hold.id}:${record.hold.microUsd}` : "";
  const written = await u.scripts.writeLedger.exec(
    [
      ...byName(LEDGER_KEYS, {
        record: u.keys.record(record.recordId),
        spendTotal: spend.total,
        spendStreams: spend.streams,
        spendDay: spend.day,
      }),
      ...budgets,
    ],
    byName(LEDGER_ARGS, {
      record: JSON.stringify(record),
      retention: LEDGER_RETENTION_SECONDS,
      cost: record.costMicroUsd,
      member,
      budgetTtl: 2 * 86_400_000 + u.specs.holdTtlMs,
    }),
  );
  return written === 1 ? "written" : "duplicate";
}

/** Adds one request's counters to the metric buckets of `at`, in one EVAL. */
async function recordMetrics(u: Upstash, counters: Counters, at: number): Promise<void> {
  const buckets = writeBuckets(at);
  await u.scripts.recordMetrics.exec(
    buckets.map((b) => u.keys.metrics(b.key)),
    [
      ...buckets.map((b) => String(b.ttlMs)),
      ...Object.entries(counters).flatMap(([f, v]) => [f, String(v)]),
    ],
  );
}

/** Sums the metric buckets of each window ending at `at`: every bucket in one /pipeline request. */
async function readMetrics(u: Upstash, at: number): Promise<Record<MetricWindow, Counters>> {
  const windows = Object.entries(readBuckets(at)) as [MetricWindow, string[]][];
  const pipeline = u.redis.pipeline();
  for (const [, keys] of windows) for (const k of keys) pipeline.hgetall(u.keys.metrics(k));
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
}
