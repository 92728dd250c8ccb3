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
import {
  type Admission,
  type AdmissionRequest,
  type BudgetView,
  type Clock,
  type ClockedStore,
  type LimitSpecs,
  systemClock,
  type UsageSnapshot,
  type WindowResult,
} from "./store";
import {
  ADMIT_ANSWER,
  ADMIT_ARGS,
  ADMIT_QUOTA_KEYS,
  ADMIT_WINDOW_KEYS,
  byName,
  CANCEL_ARGS,
  fieldsOf,
  LEDGER_ARGS,
  LEDGER_KEYS,
  REFUSED,
  SCRIPTS,
} from "./upstash-protocol";

const TOTAL_QUOTA_TTL_MS = 400 * 86_400_000;
/**
 * How long an admission's mark lives: longer than any admission can take to reach the store
 * (its call is aborted after LIMITS_TIMEOUT_MS), short enough to cost little memory.
 */
const ADMISSION_MARK_TTL_MS = 60_000;

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

type AdmitAnswer = ReturnType<typeof fieldsOf<typeof ADMIT_ANSWER>>;

/** The admission the script's answer `a` describes, step by step in contract order. */
function admission(
  request: AdmissionRequest,
  budgets: BudgetSpec[],
  a: AdmitAnswer,
  specs: LimitSpecs,
): Admission {
  const { at: now, anonymous } = request;
  const counts: [number, number] = [a.countCurrent, a.countPrevious];
  // The rate windows: the /48's refusal is the address's, per IP with its own wider limit.
  const user = windowResult(a.refused !== REFUSED.user, a.userLeft, specs.user, now, counts);
  const ip =
    a.refused === REFUSED.ipWide
      ? windowResult(false, 0, specs.ipWide, now, counts)
      : windowResult(a.refused !== REFUSED.ip, a.ipLeft, specs.ip, now, counts);
  if (!user.success || !ip.success) return { user, ip, quota: null, budget: null };
  // The anonymous quotas.
  const hourlyOk = a.refused !== REFUSED.hourly;
  const totalOk = a.refused !== REFUSED.total;
  const quota = anonymous
    ? {
        success: hourlyOk && totalOk,
        exhausted: !hourlyOk ? ("hourly" as const) : !totalOk ? ("total" as const) : null,
        hourly: windowResult(hourlyOk, a.hourlyLeft, specs.anonHourly, now, counts),
        total: { limit: specs.anonTotal, remaining: a.totalLeft, success: totalOk },
      }
    : null;
  if (!hourlyOk || !totalOk) return { user, ip, quota, budget: null };
  // The budgets.
  if (a.refused === REFUSED.budget) {
    const b = budgets[a.refusedBy] as BudgetSpec;
    const budget = {
      ok: false as const,
      budget: b.name,
      settledOut: a.settledOut === 1,
      endsAt: budgetWindow(b, now).endsAt,
    };
    return { user, ip, quota, budget };
  }
  const ticket = { id: request.id, at: now, microUsd: a.hold, anonymous, shard: 0 };
  return { user, ip, quota, budget: { ok: true, maxTokens: a.maxTokens, ticket } };
}

/** How the Upstash store is built: each has a default but the REST call's deadline. */
export interface UpstashOptions {
  /** Aborts any REST call that hangs this long, ms. */
  timeoutMs: number;
  /** Every key starts with it. */
  prefix?: string;
  /** The time of the calls that carry none of their own (usage reads). */
  now?: Clock;
}

/** Builds the Upstash store. */
export function upstashStore(
  conn: { url: string; token: string },
  specs: LimitSpecs,
  { timeoutMs: fetchTimeoutMs, prefix: PREFIX = "mb", now = systemClock }: UpstashOptions,
): ClockedStore {
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
    admit: redis.createScript<number[]>(SCRIPTS.admit),
    cancelAdmission: redis.createScript(SCRIPTS.cancelAdmission),
    refundQuota: redis.createScript(SCRIPTS.refundQuota),
    writeLedger: redis.createScript<number>(SCRIPTS.writeLedger),
    readBudgets: redis.createScript<number[]>(SCRIPTS.readBudgets),
    recordMetrics: redis.createScript(SCRIPTS.recordMetrics),
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
  const quotaKeys = (userKey: string, now: number): [string, string, string] => {
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
  /** The admission's keys by name (ADMIT_KEYS), then its budgets'. */
  const admissionKeys = (r: AdmissionRequest) => {
    const [userCurrent, userPrevious] = userWindow(r.userKey, r.at);
    const [ipCurrent, ipPrevious] = ipWindow(r.ipKey, r.at);
    // For IPv4 the /48's pair is the IP's again, which nothing touches (its limit is 0).
    const [wideCurrent, widePrevious] = r.wideIpKey
      ? wideWindow(r.wideIpKey, r.at)
      : [ipCurrent, ipPrevious];
    const windows = byName(ADMIT_WINDOW_KEYS, {
      userCurrent,
      userPrevious,
      ipCurrent,
      ipPrevious,
      mark: `${PREFIX}:admission:${r.id}`,
      wideCurrent,
      widePrevious,
    });
    const [hourlyCurrent, hourlyPrevious, total] = quotaKeys(r.userKey, r.at);
    const quotas = r.anonymous
      ? byName(ADMIT_QUOTA_KEYS, { hourlyCurrent, hourlyPrevious, total })
      : [];
    return [
      ...windows,
      ...quotas,
      ...budgetsOf(r.anonymous).flatMap((b) => budgetKeys(b, r.userKey, r.at)),
    ];
  };
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
    now,
    async admit(request): Promise<Admission> {
      const { at: now, anonymous, price } = request;
      const budgets = budgetsOf(anonymous);
      const argv = byName(ADMIT_ARGS, {
        now,
        userLimit: specs.user.limit,
        userWindow: specs.user.windowMs,
        ipLimit: specs.ip.limit,
        ipWindow: specs.ip.windowMs,
        markTtl: ADMISSION_MARK_TTL_MS,
        anonymous: anonymous ? 1 : 0,
        hourlyLimit: specs.anonHourly.limit,
        hourlyWindow: specs.anonHourly.windowMs,
        totalQuota: specs.anonTotal,
        totalQuotaTtl: TOTAL_QUOTA_TTL_MS,
        capMicroUsd: price.capMicroUsd,
        inputMicroUsd: price.inputMicroUsd,
        outputPicoUsd: price.outputPicoUsd,
        maxTokensCeiling: price.maxTokensCeiling,
        holdTtl: specs.holdTtlMs,
        admissionId: request.id,
        wideLimit: request.wideIpKey ? specs.ipWide.limit : 0,
      });
      for (const b of budgets) argv.push(String(b.limitMicroUsd), String(budgetTtl(b, now)));
      const a = fieldsOf(
        ADMIT_ANSWER,
        (await scripts.admit.exec(admissionKeys(request), argv)) as number[],
      );
      if (a.refused === REFUSED.cancelled) {
        throw new Error("the admission was cancelled before it reached the store");
      }
      return admission(request, budgets, a, specs);
    },
    async cancelAdmission(request) {
      await scripts.cancelAdmission.exec(
        admissionKeys(request),
        byName(CANCEL_ARGS, {
          markTtl: ADMISSION_MARK_TTL_MS,
          anonymous: request.anonymous ? 1 : 0,
          admissionId: request.id,
          wide: request.wideIpKey ? 1 : 0,
        }),
      );
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
      const at = now();
      const [userKeys, ipKeys] = [userWindow(userKey, at), ipWindow(ipKey, at)];
      const spend = spendKeys(userKey, utcDay(at));
      const values = await redis.mget<(string | number | null)[]>(
        ...userKeys,
        ...ipKeys,
        ...quotaKeys(userKey, at),
        spend.total,
        spend.streams,
        spend.day,
      );
      const n = (i: number) => Number(values[i] ?? 0);
      const [own] = await readBudgets(
        budgetsOf(anonymous).filter((b) => !isShared(b.name)),
        userKey,
        at,
      );
      return {
        budget: own ?? null,
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
    },
    async writeLedger(record: LedgerRecord) {
      const spend = spendKeys(record.userKey, utcDay(record.startedAt));
      // The budgets of the stream's admission (its windows), whether or not it held.
      const at = record.hold?.at ?? record.startedAt;
      const anonymous = record.hold?.anonymous ?? record.userKey.startsWith("anonymous:");
      const budgets = budgetsOf(anonymous).flatMap((b) => budgetKeys(b, record.userKey, at));
      const member = record.hold ? `${record.hold.id}:${record.hold.microUsd}` : "";
      const written = await scripts.writeLedger.exec(
        [
          ...byName(LEDGER_KEYS, {
            record: `${PREFIX}:ledger:${record.recordId}`,
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
          budgetTtl: 2 * 86_400_000 + specs.holdTtlMs,
        }),
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
