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
import {
  ADMISSION_MARK_TTL_MS,
  admissionKeys,
  bucketExpiry,
  checkQuota,
  checkWindow,
  countedRows,
  MARK,
  type OwnHold,
  type QuotaSpec,
  SLOT,
  TOTAL_QUOTA_KEY,
  TOTAL_QUOTA_TTL_MS,
} from "./durable-admission";
import { type BudgetEntry, BudgetLedger } from "./durable-budgets";
import { type CounterRow, CounterTable, sweepGate } from "./durable-counters";
import { decide, peek, windowKeys } from "./sliding-window";
import type { QuotaResult, SpendSummary, WindowResult } from "./store";

/** One object per key; `name` says which (e.g. `user:anonymous:anon_…`, `ip:203.0.113.7`). */
/**
 * The caller's time, or this object's own when the caller sent none: a Worker of the previous
 * version (during a gradual deployment) calls without it, and NaN must never reach a window's
 * comparison, where it would pass everything.
 */
function timeOf(now: number): number {
  return Number.isFinite(now) ? now : Date.now();
}

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
    now = timeOf(now);
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
    quota: QuotaSpec | null,
    now: number,
    own: OwnHold | null = null,
  ):
    | { window: WindowResult; quota: QuotaResult | null; budget: HoldDecision | null }
    | { cancelled: true } {
    now = timeOf(now);
    // Every counter it reads comes in one statement, and everything it counts goes out in one,
    // after every check passed: a refusal writes nothing it would have to undo.
    const keys = admissionKeys(id, name, spec, quota?.hourly ?? null, now);
    const counts = this.readCounters(keys, now);
    if (counts[SLOT.mark] !== 0) return { cancelled: true };
    const hit = checkWindow(counts, spec, now);
    const window = hit.result;
    if (!window.success) return { window, quota: null, budget: null };
    const spent = quota ? checkQuota(quota, counts, now) : null;
    if (spent && !spent.success) {
      // A quota refusal still counts in the rate window.
      this.commit(countedRows(keys, counts, spec, hit.current, null, now));
      return { window, quota: spent, budget: null };
    }
    const budget = own ? this.reserveHold(id, own, now) : null;
    if (budget && !budget.ok) return { window, quota: spent, budget };
    this.commit(countedRows(keys, counts, spec, hit.current, spent ? quota : null, now));
    return { window, quota: spent, budget };
  }

  /** The admission's read: its counters at `now` (SLOT order), after a sweep when one is due. */
  private readCounters(keys: string[], now: number): number[] {
    this.counters.sweep(now);
    return this.counters.read(keys, now);
  }

  /** Holds the stream's price against the user's own budgets, all or nothing. */
  private reserveHold(id: string, own: OwnHold, now: number): HoldDecision {
    return this.budgets.hold(id, own.entries, own.price, now, own.expiresAt);
  }

  /** Writes everything an admission counted, in one statement. */
  private commit(rows: CounterRow[]): void {
    this.counters.write(rows);
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
    now = timeOf(now);
    const mark = `admission:${id}`;
    const counted = this.get(mark, now);
    this.put(mark, MARK.cancelled, now + ADMISSION_MARK_TTL_MS);
    if (counted === MARK.window || counted === MARK.quota) this.uncount(name, spec, at, now);
    if (counted === MARK.quota && hourly) this.refundQuota(hourly, at, now);
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
    now = timeOf(now);
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
    now = timeOf(now);
    return this.budgets.settleOnce(recordId, id, keys, cost, now, keepUntil);
  }

  /**
   * The state of each budget in `entries` at `now` (with the µUSD of expired holds it counts in
   * full); changes nothing but counting expired holds as spent.
   */
  readBudgets(entries: BudgetEntry[], now: number): (BudgetState & { expired: number })[] {
    now = timeOf(now);
    this.budgets.sweep(now);
    return entries.map((e) => ({
      ...this.budgets.state(e, now),
      expired: this.budgets.expired(e.key),
    }));
  }

  /** Reads the named window at `now` without counting. */
  read(name: string, spec: WindowSpec, now: number): WindowResult {
    now = timeOf(now);
    return this.peekWindow(name, spec, now);
  }

  /** Gives back one quota unit spent at `spentAt`; `now` is the refund's own time. */
  refundQuota(hourly: WindowSpec, spentAt: number, now: number): void {
    now = timeOf(now);
    // Back to the bucket the unit was taken from, never below zero.
    this.uncount("quota:hourly", hourly, spentAt, now);
    const used = this.get(TOTAL_QUOTA_KEY, now);
    if (used > 0) this.put(TOTAL_QUOTA_KEY, used - 1, now + TOTAL_QUOTA_TTL_MS);
  }

  /** Reads the quotas at `now` without spending. */
  readQuota(hourly: WindowSpec, totalCap: number, now: number) {
    now = timeOf(now);
    const used = this.get(TOTAL_QUOTA_KEY, now);
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
    now = timeOf(now);
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
    now = timeOf(now);
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
    now = timeOf(now);
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
    now = timeOf(now);
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
