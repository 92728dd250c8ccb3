/**
 * @module One running stream inside its owner: the frames in memory, their batched writes to
 * storage, and the readers it fans out to. Per upstream read it does what the session's own
 * writer did (one encode, one write per reader); storage is written per batch, not per token.
 */
import { sseFrame } from "../errors";
import { type FrameStore, textAfter } from "./frame-store";
import type { Encoder, Frame } from "./frames";
import { MAX_QUEUED_FRAMES } from "./session";

/** A batch is written once it holds this many bytes of SSE text... */
export const BATCH_BYTES = 16 * 1024;
/** ...or this long after its first frame. */
export const BATCH_MS = 1_000;

/** One reader: its end of a byte stream, and how many frames it has not taken yet. */
interface Reader {
  writer: WritableStreamDefaultWriter<Uint8Array>;
  queued: number;
}

export interface LiveOptions {
  store: FrameStore;
  /** No reader for this long: `onOrphaned` (the owner cancels the upstream). */
  graceMs: number;
  onOrphaned: () => void;
  /** When a row written now may be deleted: `endedAt` null while live (a safety net). */
  expiresAt: (endedAt: number | null) => number;
  /** A row was written that may be deleted at `expiresAt` (the owner's alarm). */
  onStored: (expiresAt: number) => void;
  /** The terminal frame went out and the last batch (with the end) is stored. */
  onEnded: () => void;
}

const bytesOf = new TextEncoder();
const stopTimer = (t: ReturnType<typeof setTimeout> | undefined) => {
  if (t !== undefined) clearTimeout(t);
};

/** The frames of a live stream and its readers. */
export class LiveStream {
  /**
   * The frames not stored yet, their SSE text one after another (heartbeats are never kept:
   * a string per batch, no object per frame). Stored frames leave memory: a
   * reader that joins late reads them back from storage, so an open stream holds at most one
   * batch, whatever its length.
   */
  private pending = "";
  /** The id of the first pending frame (0: none pending) and of the last. */
  private pendingFirst = 0;
  private pendingLast = 0;
  private batchTimer: ReturnType<typeof setTimeout> | undefined;
  private graceTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly readers = new Set<Reader>();
  /** A row of this stream is written (and what an earlier stream of its id left is gone). */
  begun = false;
  lastId = 0;
  ended = false;

  constructor(
    readonly streamId: string,
    private readonly o: LiveOptions,
  ) {}

  /** The session's encoder: numbers and fans out the frames itself, so it returns null. */
  encoder(): Encoder {
    return (frames: Frame[]) => {
      let text = "";
      let terminal = false;
      for (const frame of frames) {
        if (frame.event === "tool_call_chunk") continue;
        const id = ++this.lastId;
        const piece = sseFrame(frame.event, frame.data, id);
        text += piece;
        // Past heartbeats are never replayed: not kept, not stored.
        if (frame.event === "heartbeat") continue;
        if (this.pendingFirst === 0) this.pendingFirst = id;
        this.pendingLast = id;
        this.pending += piece;
        if (frame.event === "done" || frame.event === "error") terminal = true;
      }
      // No reader (all left, the grace runs): nothing to encode.
      if (text) {
        if (this.readers.size > 0) this.fanOut(bytesOf.encode(text), frames.length);
        else this.orphaned();
      }
      if (terminal) this.end();
      else if (this.pending.length >= BATCH_BYTES) this.flush();
      else if (this.pendingFirst > 0 && this.batchTimer === undefined) {
        this.batchTimer = setTimeout(() => this.flush(), BATCH_MS);
      }
      return null;
    };
  }

  /** Writes `bytes` to every reader; one that is too far behind is cut off (it may resume). */
  private fanOut(bytes: Uint8Array, count: number): void {
    for (const reader of this.readers) {
      if (reader.queued > MAX_QUEUED_FRAMES) {
        // Still connected: it gets what is queued, then the end; a resume picks up from there.
        this.readers.delete(reader);
        void reader.writer.close().catch(() => {});
        continue;
      }
      reader.queued += count;
      reader.writer.write(bytes).then(
        () => {
          reader.queued -= count;
        },
        () => {},
      );
    }
    if (this.readers.size === 0) this.orphaned();
  }

  /**
   * Writes the pending frames as one row; `endedAt` (not null) ends the stream in that same
   * row. The first row is the stream's start: there is no other.
   */
  private flush(endedAt: number | null = null): void {
    stopTimer(this.batchTimer);
    this.batchTimer = undefined;
    if (this.pendingFirst === 0) return;
    this.begun = true;
    const expiresAt = this.o.expiresAt(endedAt);
    const batch = { first: this.pendingFirst, last: this.pendingLast, text: this.pending };
    this.o.store.append(this.streamId, batch, endedAt, expiresAt);
    this.o.onStored(expiresAt);
    this.pending = "";
    this.pendingFirst = 0;
    this.pendingLast = 0;
  }

  /**
   * Replaces an earlier stream of this id on disk with this one (live, no frames yet): at the
   * start, when the owner holds an ended stream of this id (see StreamOwner.start).
   */
  replace(): void {
    if (this.begun) return;
    this.begun = true;
    const expiresAt = this.o.expiresAt(null);
    this.o.store.replace(this.streamId, expiresAt);
    this.o.onStored(expiresAt);
  }

  /** The terminal frame went out: store the rest, end every reader. */
  private end(): void {
    if (this.ended) return;
    this.ended = true;
    stopTimer(this.graceTimer);
    this.flush(Date.now());
    this.o.onEnded();
    for (const reader of this.readers) void reader.writer.close().catch(() => {});
    this.readers.clear();
  }

  /**
   * A reader from event `after` on: the frames it missed, then the live ones, with nothing
   * between the two (both happen in this one turn of the object). `leave` drops it.
   */
  join(after: number): { body: ReadableStream<Uint8Array>; leave: () => void } {
    const { readable, writable } = new IdentityTransformStream();
    const writer = writable.getWriter();
    const reader: Reader = { writer, queued: 0 };
    let missed = "";
    // What was stored, then what is still pending.
    if (this.begun)
      for (const f of this.o.store.framesAfter(this.streamId, after)) missed += f.text;
    if (this.pendingFirst > after) missed += this.pending;
    else if (this.pendingLast > after) missed += textAfter(this.pending, after);
    if (missed) {
      reader.queued = 1;
      writer.write(bytesOf.encode(missed)).then(
        () => {
          reader.queued -= 1;
        },
        () => {},
      );
    }
    this.readers.add(reader);
    stopTimer(this.graceTimer);
    this.graceTimer = undefined;
    const leave = () => {
      if (!this.readers.delete(reader)) return;
      void writer.abort("client_abort").catch(() => {});
      if (this.readers.size === 0) this.orphaned();
    };
    // The reader's client cancelled the body (it went away).
    writer.closed.catch(leave);
    return { body: readable, leave };
  }

  /** No reader: the upstream goes on for the grace, then is cancelled unless one came back. */
  private orphaned(): void {
    if (this.ended || this.graceTimer !== undefined) return;
    this.graceTimer = setTimeout(() => {
      this.graceTimer = undefined;
      if (this.readers.size === 0 && !this.ended) this.o.onOrphaned();
    }, this.o.graceMs);
  }

  /** Stops the timers of a stream that will not go on. */
  dispose(): void {
    stopTimer(this.graceTimer);
    stopTimer(this.batchTimer);
  }
}
