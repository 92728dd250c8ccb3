/**
 * @module The floor's Durable Object: one trivial method, so the floor can pay exactly one
 * Durable Object round trip (no storage, no output gate) and the Durable Object store's own work
 * is what the gateway adds over that; `count` adds one SQL write, so the bench shows what a
 * write (and the output gate that holds the answer until it is stored) adds to a round trip.
 */
import { DurableObject } from "cloudflare:workers";

/** One object per name; `ping` answers at once, `count` after one write. */
export class FloorTrip extends DurableObject {
  private calls = 0;
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env as never);
    this.sql = ctx.storage.sql;
    this.sql.exec("CREATE TABLE IF NOT EXISTS hits (key TEXT PRIMARY KEY, n INTEGER NOT NULL)");
  }

  /** Counts the call in memory and returns the count: the least a method can do. */
  ping(): number {
    return ++this.calls;
  }

  /** Adds one to a counter row in one UPSERT ... RETURNING: the least a limit store writes. */
  count(): number {
    const row = this.sql
      .exec<{ n: number }>(
        "INSERT INTO hits (key, n) VALUES ('hits', 1) ON CONFLICT(key) DO UPDATE SET n = n + 1 RETURNING n",
      )
      .one();
    return row.n;
  }
}
