/**
 * @module The stream owner's storage: one row for the stream, one row per batch of frames (its
 * SQLite, so it outlives the object's memory and a restart). Never a row per token.
 */

/** One stored frame: its event id and its SSE text (`id:`, `event:`, `data:` lines). */
export interface StoredFrame {
  id: number;
  text: string;
}

/** What storage says of the stream: live (or cut off by an eviction) or ended at `endedAt`. */
export interface StoredStream {
  streamId: string;
  state: "live" | "ended";
  lastId: number;
  endedAt: number | null;
}

/** The owner's tables, over its SQLite; `writes` counts the rows it has written. */
export class FrameStore {
  /** Rows written since this object was made (the bench's writes per 1,000 tokens). */
  writes = 0;

  constructor(private readonly sql: SqlStorage) {
    sql.exec(`CREATE TABLE IF NOT EXISTS stream (
      k INTEGER PRIMARY KEY CHECK (k = 1), stream_id TEXT NOT NULL, state TEXT NOT NULL,
      last_id INTEGER NOT NULL, ended_at INTEGER)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS frames (
      first_id INTEGER PRIMARY KEY, last_id INTEGER NOT NULL, body TEXT NOT NULL)`);
  }

  private run(query: string, ...args: (string | number | null)[]): void {
    this.writes += this.sql.exec(query, ...args).rowsWritten;
  }

  /** Starts stream `streamId` (live), dropping what an earlier stream of this owner left. */
  begin(streamId: string): void {
    this.run("DELETE FROM frames");
    this.run(
      `INSERT INTO stream (k, stream_id, state, last_id, ended_at) VALUES (1, ?, 'live', 0, NULL)
       ON CONFLICT (k) DO UPDATE SET stream_id = excluded.stream_id, state = 'live',
       last_id = 0, ended_at = NULL`,
      streamId,
    );
  }

  /** Forgets the stream: a start that replaced an earlier one on disk and then never ran. */
  clear(): void {
    this.run("DELETE FROM frames");
    this.run("DELETE FROM stream");
  }

  /** Appends one batch of frames, in id order, as one row. */
  append(frames: StoredFrame[]): void {
    const first = frames[0];
    const last = frames.at(-1);
    if (!first || !last) return;
    this.run(
      "INSERT OR REPLACE INTO frames (first_id, last_id, body) VALUES (?, ?, ?)",
      first.id,
      last.id,
      JSON.stringify(frames.map((f) => [f.id, f.text])),
    );
  }

  /** Marks the stream ended at `endedAt`, its last event `lastId`. */
  end(lastId: number, endedAt: number): void {
    this.run(
      "UPDATE stream SET state = 'ended', last_id = ?, ended_at = ? WHERE k = 1",
      lastId,
      endedAt,
    );
  }

  /** The stream's row, or null when there is none (never started, or expired). */
  stream(): StoredStream | null {
    const row = this.sql
      .exec<{ stream_id: string; state: string; last_id: number; ended_at: number | null }>(
        "SELECT stream_id, state, last_id, ended_at FROM stream WHERE k = 1",
      )
      .toArray()[0];
    if (!row) return null;
    return {
      streamId: row.stream_id,
      state: row.state === "ended" ? "ended" : "live",
      lastId: row.last_id,
      endedAt: row.ended_at,
    };
  }

  /** The stored frames whose id is greater than `after`, in order. */
  framesAfter(after: number): StoredFrame[] {
    const rows = this.sql
      .exec<{ body: string }>("SELECT body FROM frames WHERE last_id > ? ORDER BY first_id", after)
      .toArray();
    const out: StoredFrame[] = [];
    for (const row of rows) {
      for (const [id, text] of JSON.parse(row.body) as [number, string][]) {
        if (id > after) out.push({ id, text });
      }
    }
    return out;
  }

  /** The id of the last stored frame (0: none). */
  lastStoredId(): number {
    const row = this.sql
      .exec<{ last: number | null }>("SELECT MAX(last_id) AS last FROM frames")
      .toArray()[0];
    return row?.last ?? 0;
  }
}
