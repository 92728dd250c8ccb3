/**
 * @module The stream owner's storage: its principal's streams, one row per batch of frames,
 * keyed by stream id (its SQLite, so it outlives the object's memory and a restart). Never a row
 * per token, and no separate row for a stream's start or end: a stream's first batch is its
 * start, its last batch carries its end, so a stream that ends within its first batch writes one
 * row. An id used again is replaced at its start by a marker row (no frames, live).
 */

/** One stored frame: its event id and its SSE text (`id:`, `event:`, `data:` lines). */
export interface StoredFrame {
  id: number;
  text: string;
}

/** A batch of frames: the ids of its first and last, and their SSE text, one after another. */
export interface Batch {
  first: number;
  last: number;
  text: string;
}

/**
 * The frames of a batch's text. Each frame is `id: n\n`, more lines, and a blank line; no
 * frame holds a blank line inside (its data is one line of JSON), so the blank lines split them.
 */
export function framesOf(text: string): StoredFrame[] {
  const out: StoredFrame[] = [];
  let at = 0;
  while (at < text.length) {
    const end = text.indexOf("\n\n", at);
    const stop = end < 0 ? text.length : end + 2;
    const piece = text.slice(at, stop);
    out.push({ id: Number.parseInt(piece.slice(4), 10), text: piece });
    at = stop;
  }
  return out;
}

/** The text of the frames of `text` whose id is greater than `after`. */
export function textAfter(text: string, after: number): string {
  let out = "";
  for (const f of framesOf(text)) if (f.id > after) out += f.text;
  return out;
}

/** What storage says of a stream: live (or cut off by a restart) or ended at `endedAt`. */
export interface StoredStream {
  streamId: string;
  state: "live" | "ended";
  lastId: number;
  endedAt: number | null;
}

/** Rows written, by stream id, kept for this many streams at most (the newest). */
const WRITES_KEPT = 1_000;

/** The owner's table, over its SQLite; `writesOf` counts the rows each stream has written. */
export class FrameStore {
  private readonly writes = new Map<string, number>();

  constructor(private readonly sql: SqlStorage) {
    // `expires_at`: when the stream may go, as of this row; a stream's newest row says.
    sql.exec(`CREATE TABLE IF NOT EXISTS batches (
      stream_id TEXT NOT NULL, first_id INTEGER NOT NULL, last_id INTEGER NOT NULL,
      body TEXT NOT NULL, ended_at INTEGER, expires_at INTEGER NOT NULL,
      PRIMARY KEY (stream_id, first_id)) WITHOUT ROWID`);
  }

  private run(streamId: string, query: string, ...args: (string | number | null)[]): void {
    const n = this.sql.exec(query, ...args).rowsWritten;
    const had = this.writes.get(streamId);
    if (had === undefined && this.writes.size >= WRITES_KEPT) {
      const oldest = this.writes.keys().next().value;
      if (oldest !== undefined) this.writes.delete(oldest);
    }
    this.writes.set(streamId, (had ?? 0) + n);
  }

  /** Rows written for `streamId` since this object was made (the bench and the tests). */
  writesOf(streamId: string): number {
    return this.writes.get(streamId) ?? 0;
  }

  /**
   * Replaces what an earlier stream of `streamId` left with a live stream of no frames yet (a
   * marker row, replaced in turn by nothing: the frames' rows follow it).
   */
  replace(streamId: string, expiresAt: number): void {
    this.run(streamId, "DELETE FROM batches WHERE stream_id = ?", streamId);
    this.run(
      streamId,
      `INSERT INTO batches (stream_id, first_id, last_id, body, ended_at, expires_at)
       VALUES (?, 0, 0, '', NULL, ?)`,
      streamId,
      expiresAt,
    );
  }

  /** Forgets `streamId`: a start that replaced an earlier one on disk and then never ran. */
  clear(streamId: string): void {
    this.run(streamId, "DELETE FROM batches WHERE stream_id = ?", streamId);
  }

  /**
   * Appends one batch of frames, in id order, as one row: their SSE text as it went out (no
   * encoding of its own); `endedAt` (not null) ends the stream with it. One statement, one row.
   */
  append(streamId: string, batch: Batch, endedAt: number | null, expiresAt: number): void {
    if (!batch.text) return;
    this.run(
      streamId,
      `INSERT OR REPLACE INTO batches (stream_id, first_id, last_id, body, ended_at, expires_at)
       VALUES (?, ?, ?, ?, ?, ?)`,
      streamId,
      batch.first,
      batch.last,
      batch.text,
      endedAt,
      expiresAt,
    );
  }

  /** What is stored of `streamId`, or null when nothing is (never started, or expired). */
  stream(streamId: string): StoredStream | null {
    const row = this.sql
      .exec<{ n: number; last: number | null; ended: number | null }>(
        `SELECT COUNT(*) AS n, MAX(last_id) AS last, MAX(ended_at) AS ended
         FROM batches WHERE stream_id = ?`,
        streamId,
      )
      .one();
    if (!row.n) return null;
    return {
      streamId,
      state: row.ended === null ? "live" : "ended",
      lastId: row.last ?? 0,
      endedAt: row.ended,
    };
  }

  /** The stored frames of `streamId` whose id is greater than `after`, in order. */
  framesAfter(streamId: string, after: number): StoredFrame[] {
    const rows = this.sql
      .exec<{ body: string }>(
        "SELECT body FROM batches WHERE stream_id = ? AND last_id > ? ORDER BY first_id",
        streamId,
        after,
      )
      .toArray();
    const out: StoredFrame[] = [];
    for (const row of rows) for (const f of framesOf(row.body)) if (f.id > after) out.push(f);
    return out;
  }

  /**
   * Deletes every stream whose newest row expired by `cutoff`, except `keep` (running here),
   * and returns the next expiry of what is left (null: nothing is).
   */
  sweep(cutoff: number, keep: Iterable<string>): number | null {
    const kept = JSON.stringify([...keep]);
    this.sql.exec(
      `DELETE FROM batches WHERE stream_id IN (
         SELECT b.stream_id FROM batches b
         WHERE b.first_id = (SELECT MAX(first_id) FROM batches c WHERE c.stream_id = b.stream_id)
           AND b.expires_at <= ?
           AND b.stream_id NOT IN (SELECT value FROM json_each(?)))`,
      cutoff,
      kept,
    );
    const next = this.sql
      .exec<{ next: number | null }>(
        `SELECT MIN(b.expires_at) AS next FROM batches b
         WHERE b.first_id = (SELECT MAX(first_id) FROM batches c WHERE c.stream_id = b.stream_id)`,
      )
      .one();
    return next.next;
  }
}
