/**
 * @module Budget holds inside one Durable Object's SQLite: a user's own budget in the user's
 * object, a shard of each shared budget in a shard object. Synchronous SQL in an object that
 * runs one call at a time, so every decision is atomic.
 */
import { type BudgetState, decideHold, type HoldDecision, type HoldPrice } from "./budget";
import { placeholders, sweepGate } from "./durable-counters";

/** One budget as an object holds it: its key (`<name>:<window id>`) and its ceiling, µUSD. */
export interface BudgetEntry {
  key: string;
  limit: number;
}

/** Settled ids are remembered this long, so a replayed settlement counts once. */
const SETTLED_TTL_MS = 3 * 86_400_000;
/** Spend (and the memory of an expired hold) outlives the hold's window by this much. */
const SPENT_KEEP_MS = 2 * 86_400_000;

/** Budget holds and spend over an object's SQL storage. */
export class BudgetLedger {
  /**
   * No hold in the table expires before this (unix ms): a lower bound, kept in memory, so a
   * sweep that would find nothing is skipped. 0 (sweep) when the object starts; lowered by
   * every hold written; set to the earliest live expiry after each sweep.
   */
  private earliestExpiry = 0;
  /**
   * Settled ids past their time are dropped at most once a minute (a scan of every settlement
   * the shard made in SETTLED_TTL_MS); one kept a minute longer only makes a replay count once.
   */
  private readonly settledSweepDue = sweepGate();

  constructor(private readonly sql: SqlStorage) {
    sql.exec(`CREATE TABLE IF NOT EXISTS holds (
      id TEXT NOT NULL, budget TEXT NOT NULL, amount INTEGER NOT NULL, expires_at INTEGER NOT NULL,
      PRIMARY KEY (id, budget))`);
    sql.exec("CREATE INDEX IF NOT EXISTS holds_by_budget ON holds (budget, expires_at)");
    sql.exec(`CREATE TABLE IF NOT EXISTS budget_spent (
      budget TEXT PRIMARY KEY, spent INTEGER NOT NULL, expires_at INTEGER NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS settled (
      record_id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS expired_holds (
      id TEXT NOT NULL, budget TEXT NOT NULL, amount INTEGER NOT NULL, expires_at INTEGER NOT NULL,
      PRIMARY KEY (id, budget))`);
  }

  /**
   * Counts every hold that expired unsettled (its isolate died, its record could not be
   * written) as spent in full, since the provider may have billed all of it, and remembers it,
   * so a record that arrives later replaces that amount (`settle`). Never frees it.
   */
  sweep(now: number): void {
    if (now < this.earliestExpiry) return;
    const expired = this.sql
      .exec<{ id: string; budget: string; amount: number; expires_at: number }>(
        "SELECT id, budget, amount, expires_at FROM holds WHERE expires_at <= ?",
        now,
      )
      .toArray();
    for (const h of expired) {
      const keep = h.expires_at + SPENT_KEEP_MS;
      this.addSpent(h.budget, h.amount, keep);
      this.sql.exec(
        `INSERT OR REPLACE INTO expired_holds (id, budget, amount, expires_at)
         VALUES (?, ?, ?, ?)`,
        h.id,
        h.budget,
        h.amount,
        keep,
      );
    }
    if (expired.length > 0) this.sql.exec("DELETE FROM holds WHERE expires_at <= ?", now);
    this.sql.exec("DELETE FROM expired_holds WHERE expires_at <= ?", now);
    const next = this.sql
      .exec<{ at: number | null }>("SELECT MIN(expires_at) AS at FROM holds")
      .toArray()[0]?.at;
    this.earliestExpiry = next ?? Number.POSITIVE_INFINITY;
  }

  private addSpent(budget: string, amount: number, keepUntil: number): void {
    this.sql.exec(
      `INSERT INTO budget_spent (budget, spent, expires_at) VALUES (?, ?, ?)
       ON CONFLICT(budget) DO UPDATE SET spent = spent + excluded.spent`,
      budget,
      amount,
      keepUntil,
    );
  }

  /** µUSD of `key`'s holds that expired unsettled and still count in full (for operators). */
  expired(key: string): number {
    const row = this.sql
      .exec<{ total: number | null }>(
        "SELECT SUM(amount) AS total FROM expired_holds WHERE budget = ?",
        key,
      )
      .toArray()[0];
    return row?.total ?? 0;
  }

  /** Each budget's settled spend and live holds at `now` (two statements for all of them). */
  states(entries: BudgetEntry[], now: number): BudgetState[] {
    if (entries.length === 0) return [];
    const keys = entries.map((e) => e.key);
    const spent = new Map<string, number>();
    const held = new Map<string, number>();
    const inKeys = placeholders(keys.length);
    for (const r of this.sql.exec<{ budget: string; spent: number }>(
      `SELECT budget, spent FROM budget_spent WHERE budget IN (${inKeys}) AND expires_at > ?`,
      ...keys,
      now,
    ))
      spent.set(r.budget, r.spent);
    for (const r of this.sql.exec<{ budget: string; held: number }>(
      `SELECT budget, SUM(amount) AS held FROM holds WHERE budget IN (${inKeys}) AND expires_at > ?
       GROUP BY budget`,
      ...keys,
      now,
    ))
      held.set(r.budget, r.held);
    return entries.map((e) => ({
      limit: e.limit,
      spent: spent.get(e.key) ?? 0,
      held: held.get(e.key) ?? 0,
    }));
  }

  /** A budget's settled spend and live holds at `now`. */
  state(entry: BudgetEntry, now: number): BudgetState {
    return this.states([entry], now)[0] as BudgetState;
  }

  /** Decides the hold against `entries` and, when it passes, holds it under `id` until `expiresAt`. */
  hold(
    id: string,
    entries: BudgetEntry[],
    price: HoldPrice,
    now: number,
    expiresAt: number,
  ): HoldDecision {
    this.sweep(now);
    const decision = decideHold(price, this.states(entries, now));
    if (decision.ok && entries.length > 0) {
      this.sql.exec(
        `INSERT OR REPLACE INTO holds (id, budget, amount, expires_at)
         VALUES ${entries.map(() => "(?, ?, ?, ?)").join(", ")}`,
        ...entries.flatMap((e) => [id, e.key, decision.holdMicroUsd, expiresAt]),
      );
      this.earliestExpiry = Math.min(this.earliestExpiry, expiresAt);
    }
    return decision;
  }

  /** Lowers hold `id` to `amount` (another object's budget shrank the stream's cap). */
  trim(id: string, amount: number): void {
    this.sql.exec("UPDATE holds SET amount = MIN(amount, ?) WHERE id = ?", amount, id);
  }

  /** Drops hold `id` (a cancelled admission). */
  release(id: string): void {
    this.sql.exec("DELETE FROM holds WHERE id = ?", id);
  }

  /**
   * Replaces hold `id` by the stream's cost in each budget of `keys` (its admission's windows):
   * a live hold is released; one that expired and was counted in full is taken back out of the
   * spend. The caller makes sure this runs once per record.
   */
  settle(id: string, keys: string[], cost: number, now: number, keepUntil: number): void {
    this.release(id);
    for (const key of keys) {
      const expired = this.sql
        .exec<{ amount: number }>(
          "SELECT amount FROM expired_holds WHERE id = ? AND budget = ?",
          id,
          key,
        )
        .toArray()[0];
      if (expired) {
        this.sql.exec("DELETE FROM expired_holds WHERE id = ? AND budget = ?", id, key);
      }
      this.addSpent(key, cost - (expired?.amount ?? 0), keepUntil);
    }
    this.sql.exec("DELETE FROM budget_spent WHERE expires_at <= ?", now);
  }

  /** `settle`, once per record id: a replay changes nothing. Returns whether it settled. */
  settleOnce(
    recordId: string,
    id: string,
    keys: string[],
    cost: number,
    now: number,
    keepUntil: number,
  ): boolean {
    if (this.settledSweepDue(now)) this.sql.exec("DELETE FROM settled WHERE expires_at <= ?", now);
    const inserted = this.sql.exec(
      "INSERT INTO settled (record_id, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
      recordId,
      now + SETTLED_TTL_MS,
    ).rowsWritten;
    if (inserted === 0) return false;
    this.settle(id, keys, cost, now, keepUntil);
    return true;
  }
}
