/**
 * @module The Durable Object store: one SQLite-backed object per limit key (a user, an IP).
 * A Durable Object runs one call at a time and every call here is synchronous SQL, so each
 * decision is atomic without locks.
 */
import { DurableObject } from "cloudflare:workers";
import type { WindowSpec } from "../config";
import { LEDGER_RETENTION_SECONDS, type LedgerRecord, utcDay } from "../ledger/record";
import { type Counters, type MetricWindow, readBuckets, writeBuckets } from "../observe/metrics";
import type { BudgetState, HoldDecision, HoldPrice } from "./budget";
import { type BudgetEntry, BudgetLedger } from "./durable-budgets";
import { type CounterRow, CounterTable, sweepGate } from "./durable-counters";
import { decide, peek, windowKeys } from "./sliding-window";
import type { QuotaResult, SpendSummary, WindowResult } from "./store";

/** Counters of the anonymous total quota live this long after their last use. */
const TOTAL_QUOTA_TTL_MS = 400 * 86_400_000;
/** An admission's mark (what it counted) lives this long: longer than any call can be late. */
const ADMISSION_MARK_TTL_MS = 60_000;
const [MARK_WINDOW, MARK_QUOTA, MARK_CANCELLED] = [1, 2, 3];

/** A window bucket's counter outlives the bucket and the window after it. */
const bucketExpiry = (spec: WindowSpec, now: number) => now + spec.windowMs * 2 + 1000;

/** One object per key; `name` says which (e.g. `user:anonymous:anon_…`, `ip:203.0.113.7`). */
export class LimitsStore extends DurableObject {
  private readonly sql: SqlStorage;
  private readonly counters: CounterTable;
  private readonly budgets: BudgetLedger;
  /** Records past retention are dropped at most once a minute (a scan of the user's ledger). */
  private readonly ledgerSweepDue = sweepGate();

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env as Cloudflare.Env);
    this.sql = ctx.storage.sql;
    this.counters = new CounterTable(this.sql);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS metrics (
      bucket TEXT NOT NULL, field TEXT NOT NULL, value INTEGER NOT NULL, expires_at INTEGER NOT NULL,
      PRIMARY KEY (bucket, field))`);
    this.sql.exec(`CREATE TABLE IF NOT EXISTS ledger (
      record_id TEXT PRIMARY KEY, body TEXT NOT NULL, started_at INTEGER NOT NULL)`);
    this.budgets = new BudgetLedger(this.sql);
  }

  private get(key: string, now: number): number {
    return this.counters.get(key, now);
  }

  private put(key: string, value: number, expiresAt: number): void {
    this.counters.write([[key, value, expiresAt]]);
  }

  private hitWindow(name: string, spec: WindowSpec, now: number): WindowResult {
    this.counters.sweep(now);
    const [currentKey, previousKey] = windowKeys(name, spec, now);
    const [current, previous] = this.counters.read([currentKey, previousKey], now);
    const decided = decide(current ?? 0, previous ?? 0, now, spec);
    if (decided.result.success) this.put(currentKey, decided.current, bucketExpiry(spec, now));
    return decided.result;
  }

  /** Takes one hit back from the bucket of the named window that `at` fell in, never below zero. */
  private uncount(name: string, spec: WindowSpec, at: number, now: number): void {
    const [bucketKey] = windowKeys(name, spec, at);
    const inBucket = this.get(bucketKey, now);
    if (inBucket > 0) this.put(bucketKey, inBucket - 1, bucketExpiry(spec, now));
  }

  private peekWindow(name: string, spec: WindowSpec, now: number): WindowResult {
    const [current, previous] = this.counters.read(windowKeys(name, spec, now), now);
    return peek(current ?? 0, previous ?? 0, now, spec);
  }

  /** Counts one hit in the named sliding window at `now`. */
  hit(name: string, spec: WindowSpec, now: number): WindowResult {
    return this.hitWindow(name, spec, now);
  }

  /**
   * Counts admission `id` in the named window at `now`, and when it passes and `quota` is given
   * (the user's object), spends one quota unit, then holds against `own` budgets (the user's
   * object; the IP's has none). A budget refusal counts nothing at all. Marks what it counted,
   * so that `cancelAdmission` can undo exactly that; `{cancelled: true}` when it was cancelled
   * first (the caller throws: a throw here would be logged by the runtime as an uncaught
   * exception). `budget` is null when the window or the quota refused.
   */
  admit(
    id: string,
    name: string,
    spec: WindowSpec,
    quota: { hourly: WindowSpec; total: number } | null,
    now: number,
    own: { entries: BudgetEntry[]; price: HoldPrice; expiresAt: number } | null = null,
  ):
    | { window: WindowResult; quota: QuotaResult | null; budget: HoldDecision | null }
    | { cancelled: true } {
    // Every counter this admission reads comes in one statement, and everything it counts goes
    // out in one, after every check passed: a refusal writes nothing it would have to undo.
    const mark = `admission:${id}`;
    const windowAt = windowKeys(name, spec, now);
    const hourlyAt = quota ? windowKeys("quota:hourly", quota.hourly, now) : null;
    this.counters.sweep(now);
    const [marked, current, previous, hourlyCurrent, hourlyPrevious, used] = this.counters.read(
      hourlyAt ? [mark, ...windowAt, ...hourlyAt, "quota:total"] : [mark, ...windowAt],
      now,
    ) as [number, number, number, number?, number?, number?];
    if (marked !== 0) return { cancelled: true };
    const hit = decide(current, previous, now, spec);
    const window = hit.result;
    if (!window.success) return { window, quota: null, budget: null };
    const rows: CounterRow[] = [[windowAt[0], hit.current, bucketExpiry(spec, now)]];
    const markRow = (what: number): CounterRow => [mark, what, now + ADMISSION_MARK_TTL_MS];
    let spent: QuotaResult | null = null;
    if (quota && hourlyAt) {
      spent = this.spendQuota(quota, hourlyCurrent ?? 0, hourlyPrevious ?? 0, used ?? 0, now);
      if (!spent.success) {
        // A quota refusal still counts in the rate window.
        this.counters.write([...rows, markRow(MARK_WINDOW)]);
        return { window, quota: spent, budget: null };
      }
      rows.push(
        [hourlyAt[0], (hourlyCurrent ?? 0) + 1, bucketExpiry(quota.hourly, now)],
        ["quota:total", (used ?? 0) + 1, now + TOTAL_QUOTA_TTL_MS],
      );
    }
    const budget = own ? this.budgets.hold(id, own.entries, own.price, now, own.expiresAt) : null;
    // A budget refusal counts nothing at all.
    if (budget && !budget.ok) return { window, quota: spent, budget };
    this.counters.write([...rows, markRow(spent ? MARK_QUOTA : MARK_WINDOW)]);
    return { window, quota: spent, budget };
  }

  /**
   * Undoes what admission `id` (made at `at`) counted in the named window (and the quota unit,
   * if it spent one, and its hold), never below zero; an `admit` of the same id that arrives
   * later counts nothing. `now` is the cancel's own time.
   */
  cancelAdmission(
    id: string,
    name: string,
    spec: WindowSpec,
    hourly: WindowSpec | null,
    at: number,
    now: number,
  ): void {
    const mark = `admission:${id}`;
    const counted = this.get(mark, now);
    this.put(mark, MARK_CANCELLED, now + ADMISSION_MARK_TTL_MS);
    if (counted === MARK_WINDOW || counted === MARK_QUOTA) this.uncount(name, spec, at, now);
    if (counted === MARK_QUOTA && hourly) this.refundQuota(hourly, at, now);
    this.budgets.release(id);
  }

  /** A shard of the shared budgets: holds against `entries`, all or nothing. */
  holdShared(
    id: string,
    entries: BudgetEntry[],
    price: HoldPrice,
    now: number,
    expiresAt: number,
  ): HoldDecision {
    return this.budgets.hold(id, entries, price, now, expiresAt);
  }

  /** Lowers hold `id` to `amount`: another object shrank the stream's cap. */
  trimHold(id: string, amount: number): void {
    this.budgets.trim(id, amount);
  }

  /** Drops hold `id` (its admission was refused elsewhere). */
  releaseHold(id: string): void {
    this.budgets.release(id);
  }

  /** A shard's settlement of record `recordId` at `now`: once, however often it is replayed. */
  settleShared(
    recordId: string,
    id: string,
    keys: string[],
    cost: number,
    keepUntil: number,
    now: number,
  ) {
    return this.budgets.settleOnce(recordId, id, keys, cost, now, keepUntil);
  }

  /**
   * The state of each budget in `entries` at `now` (with the µUSD of expired holds it counts in
   * full); changes nothing but counting expired holds as spent.
   */
  readBudgets(entries: BudgetEntry[], now: number): (BudgetState & { expired: number })[] {
    this.budgets.sweep(now);
    return entries.map((e) => ({
      ...this.budgets.state(e, now),
      expired: this.budgets.expired(e.key),
    }));
  }

  /** Reads the named window at `now` without counting. */
  read(name: string, spec: WindowSpec, now: number): WindowResult {
    return this.peekWindow(name, spec, now);
  }

  /**
   * Decides one unit of the hourly and the total quota, both or neither, from their counters
   * (the hourly window's current and previous bucket, the total used); writes nothing.
   */
  private spendQuota(
    quota: { hourly: WindowSpec; total: number },
    hourlyCurrent: number,
    hourlyPrevious: number,
    used: number,
    now: number,
  ): QuotaResult {
    const totalCap = quota.total;
    const total = {
      limit: totalCap,
      remaining: Math.max(0, totalCap - used),
      success: used < totalCap,
    };
    if (!total.success) {
      const hourly = peek(hourlyCurrent, hourlyPrevious, now, quota.hourly);
      return { success: false, exhausted: "total", hourly, total };
    }
    const hourly = decide(hourlyCurrent, hourlyPrevious, now, quota.hourly).result;
    if (!hourly.success) return { success: false, exhausted: "hourly", hourly, total };
    return {
      success: true,
      exhausted: null,
      hourly,
      total: { limit: totalCap, remaining: totalCap - used - 1, success: true },
    };
  }

  /** Gives back one quota unit spent at `spentAt`; `now` is the refund's own time. */
  refundQuota(hourly: WindowSpec, spentAt: number, now: number): void {
    // Back to the bucket the unit was taken from, never below zero.
    this.uncount("quota:hourly", hourly, spentAt, now);
    const used = this.get("quota:total", now);
    if (used > 0) this.put("quota:total", used - 1, now + TOTAL_QUOTA_TTL_MS);
  }

  /** Reads the quotas at `now` without spending. */
  readQuota(hourly: WindowSpec, totalCap: number, now: number) {
    const used = this.get("quota:total", now);
    return {
      hourly: this.peekWindow("quota:hourly", hourly, now),
      total: { limit: totalCap, remaining: Math.max(0, totalCap - used) },
    };
  }

  /**
   * Stores a ledger record and adds its cost to the spend counters, and settles its hold in
   * the user's own budgets (`ownKeys`), once per record id; `now` is the write's own time.
   */
  writeLedger(
    record: LedgerRecord,
    ownKeys: string[],
    keepUntil: number,
    now: number,
  ): "written" | "duplicate" {
    if (this.ledgerSweepDue(now)) {
      this.sql.exec(
        "DELETE FROM ledger WHERE started_at < ?",
        now - LEDGER_RETENTION_SECONDS * 1000,
      );
    }
    const inserted = this.sql.exec(
      "INSERT INTO ledger (record_id, body, started_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
      record.recordId,
      JSON.stringify(record),
      record.startedAt,
    ).rowsWritten;
    if (inserted === 0) return "duplicate";
    if (record.hold || ownKeys.length > 0) {
      this.budgets.settle(record.hold?.id ?? "", ownKeys, record.costMicroUsd, now, keepUntil);
    }
    const forever = Number.MAX_SAFE_INTEGER;
    const dayKey = `spend:day:${utcDay(record.startedAt)}`;
    const [total, streams, day] = this.counters.read(["spend:total", "spend:streams", dayKey], now);
    const cost = record.costMicroUsd;
    this.counters.write([
      ["spend:total", (total ?? 0) + cost, forever],
      ["spend:streams", (streams ?? 0) + 1, forever],
      [dayKey, (day ?? 0) + cost, now + 31 * 86_400_000],
    ]);
    return "written";
  }

  /** The spend counters at `now` (today is `now`'s UTC day), in USD. */
  spend(now: number): SpendSummary {
    return {
      totalUsd: this.get("spend:total", now) / 1e6,
      todayUsd: this.get(`spend:day:${utcDay(now)}`, now) / 1e6,
      streams: this.get("spend:streams", now),
    };
  }

  /** Ledger records of this user, newest first (for tests and support). */
  records(limit = 100): LedgerRecord[] {
    return this.sql
      .exec<{ body: string }>("SELECT body FROM ledger ORDER BY started_at DESC LIMIT ?", limit)
      .toArray()
      .map((r) => JSON.parse(r.body) as LedgerRecord);
  }

  /** Adds counters to the metric buckets of `now` (used on the single "metrics" object). */
  recordMetrics(counters: Counters, now: number): void {
    this.sql.exec("DELETE FROM metrics WHERE expires_at <= ?", now);
    for (const { key, ttlMs } of writeBuckets(now)) {
      for (const [field, value] of Object.entries(counters)) {
        this.sql.exec(
          `INSERT INTO metrics (bucket, field, value, expires_at) VALUES (?, ?, ?, ?)
           ON CONFLICT(bucket, field) DO UPDATE SET value = value + excluded.value`,
          key,
          field,
          value,
          now + ttlMs,
        );
      }
    }
  }

  /** Sums each window's buckets. */
  readMetrics(now: number): Record<MetricWindow, Counters> {
    const out = {} as Record<MetricWindow, Counters>;
    for (const [window, keys] of Object.entries(readBuckets(now)) as [MetricWindow, string[]][]) {
      const rows = this.sql
        .exec<{ field: string; total: number }>(
          `SELECT field, SUM(value) AS total FROM metrics
           WHERE bucket IN (${keys.map(() => "?").join(",")}) AND expires_at > ? GROUP BY field`,
          ...keys,
          now,
        )
        .toArray();
      out[window] = Object.fromEntries(rows.map((r) => [r.field, r.total]));
    }
    return out;
  }
}
