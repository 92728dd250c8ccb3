/**
 * @module Counter rows in a Durable Object's SQLite: many read in one statement, many written in
 * one, and expired rows dropped at most once a minute. Reads ignore expired rows, so the sweep
 * is garbage collection only, never part of a decision.
 */

/** Expired counter rows are dropped at most this often (a full scan of the table). */
const SWEEP_EVERY_MS = 60_000;

/** One counter to write: its key, its new value, when it expires (unix ms). */
export type CounterRow = readonly [key: string, value: number, expiresAt: number];

/**
 * A gate that opens at most once per `everyMs` (and at an object's first call): for sweeps of
 * rows that every read already ignores, which need not run on every request.
 */
export function sweepGate(everyMs = SWEEP_EVERY_MS): (now: number) => boolean {
  let next = 0;
  return (now) => {
    if (now < next) return false;
    next = now + everyMs;
    return true;
  };
}

/** The `counters` table of one object. */
export class CounterTable {
  private readonly due = sweepGate();

  constructor(private readonly sql: SqlStorage) {
    sql.exec(`CREATE TABLE IF NOT EXISTS counters (
      key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires_at INTEGER NOT NULL)`);
  }

  /** The live value of each key at `now` (0 when absent or expired), in one statement. */
  read(keys: readonly string[], now: number): number[] {
    const found = new Map<string, number>();
    const rows = this.sql.exec<{ key: string; value: number }>(
      `SELECT key, value FROM counters WHERE key IN (${placeholders(keys.length)}) AND expires_at > ?`,
      ...keys,
      now,
    );
    for (const row of rows) found.set(row.key, row.value);
    return keys.map((k) => found.get(k) ?? 0);
  }

  /** The live value of `key` at `now`, 0 when absent or expired. */
  get(key: string, now: number): number {
    return this.read([key], now)[0] ?? 0;
  }

  /** Sets every row (value and expiry) in one statement. */
  write(rows: readonly CounterRow[]): void {
    if (rows.length === 0) return;
    this.sql.exec(
      `INSERT INTO counters (key, value, expires_at) VALUES ${rows.map(() => "(?, ?, ?)").join(", ")}
       ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
      ...rows.flat(),
    );
  }

  /** Drops rows expired at `now`, at most once a minute per object instance. */
  sweep(now: number): void {
    if (!this.due(now)) return;
    this.sql.exec("DELETE FROM counters WHERE expires_at <= ?", now);
  }
}

/** `?, ?, …`: `n` placeholders. */
export const placeholders = (n: number) => Array.from({ length: n }, () => "?").join(", ");
