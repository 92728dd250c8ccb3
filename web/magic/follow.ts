/**
 * @module Following one answer's stream to its terminal event across dropped connections: when
 * the body breaks or ends without `done`/`error`, it asks the server for the events after the
 * last one it has (GET /api/v1/streams/{id}, Last-Event-ID), with backoff, and goes on with the
 * same answer. Every event reaches the answer once: an id at or below the last one is skipped.
 */
import { type ApiError, readApiError } from "./api";
import { readStream, type StreamEnd } from "./sse";

/** Waits between reconnects, in ms; the last one repeats. */
export const BACKOFF_MS = [500, 1000, 2000, 4000, 8000];
/**
 * How long (ms) after a drop the page keeps trying. Long past the orphan grace (30 s) after
 * which the server ends a stream nobody reads, and well inside the time it keeps an ended
 * stream (600 s): a reconnect within it still gets every event the stream produced.
 */
export const GIVE_UP_MS = 120_000;
/**
 * A connection that brings no event for this long (ms) is taken for dead and resumed: the
 * server sends a heartbeat every 10 s, and a connection lost while switching networks may
 * otherwise hang silently, without any error, for minutes.
 */
export const STALL_MS = 35_000;

/** Where an answer's stream stands: the fields of a Turn the follower keeps up to date. */
export interface Position {
  streamId: string;
  /** The id of the last event the answer holds; -1: the events carry no ids (not resumable). */
  lastEventId: number;
}

/** How following ended. */
export type Ending =
  /** The terminal event (`done` or `error`). */
  | { kind: "end"; end: StreamEnd }
  /** 204: the stream ended and the answer already holds all of it. */
  | { kind: "complete" }
  /** 404: the server no longer has the stream (expired, or never known to it). */
  | { kind: "gone" }
  /** The connection could not be restored within GIVE_UP_MS. */
  | { kind: "gave-up" }
  /** Dropped, and not resumable (no stream id, or events without ids). */
  | { kind: "dropped" }
  /** The server refused the resume (an error other than 404, 408, 429 and 5xx). */
  | { kind: "refused"; error: ApiError };

/** What the follower tells its caller. */
export interface FollowHooks {
  /** A new event (not a terminal one), after `position` has moved to it. */
  event(event: string, data: Record<string, unknown>): void;
  /** The connection dropped; the next try is in `delayMs`. */
  reconnecting(delayMs: number): void;
  /** A resume was answered with the stream: the answer goes on. */
  reconnected(): void;
}

/** Time and I/O, so a test pins them. */
export interface FollowDeps {
  resume(streamId: string, after: number, signal: AbortSignal): Promise<Response>;
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  now?: () => number;
}

/** Waits `ms`, less if the browser says it is back online; rejects when `signal` aborts. */
export function sleepUnlessOnline(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", aborted);
      globalThis.removeEventListener?.("online", online);
    };
    const aborted = () => {
      done();
      reject(signal.reason);
    };
    // Back online: a short pause for the network to settle, then try.
    const online = () => {
      clearTimeout(timer);
      timer = setTimeout(finish, 100);
    };
    const finish = () => {
      done();
      resolve();
    };
    let timer = setTimeout(finish, ms);
    if (signal.aborted) return aborted();
    signal.addEventListener("abort", aborted, { once: true });
    globalThis.addEventListener?.("online", online);
  });
}

/**
 * Reads one connection like readStream, but gives it up (null, as a drop) when the browser says
 * it went offline or when nothing came for STALL_MS: either way a resume from the last event
 * loses nothing, while waiting on a dead connection would hang the answer.
 */
async function read(
  body: ReadableStream<Uint8Array>,
  onEvent: (event: string, data: Record<string, unknown>, id: number | null) => void,
  now: () => number,
): Promise<StreamEnd | null> {
  const cut = new AbortController();
  let seen = now();
  const watch = setInterval(() => {
    if (now() - seen > STALL_MS) cut.abort();
  }, 5_000);
  const offline = () => cut.abort();
  globalThis.addEventListener?.("offline", offline);
  try {
    return await readStream(
      body,
      (event, data, id) => {
        seen = now();
        onEvent(event, data, id);
      },
      cut.signal,
    );
  } finally {
    clearInterval(watch);
    globalThis.removeEventListener?.("offline", offline);
  }
}

/**
 * Follows the stream at `position` to its end. `body` is the response being read, or null to
 * start with a resume (the page was reloaded mid-answer). Aborting `signal` rejects with its
 * reason, wherever it is; every other failure is an Ending.
 */
export async function follow(
  position: Position,
  body: ReadableStream<Uint8Array> | null,
  hooks: FollowHooks,
  deps: FollowDeps,
  signal: AbortSignal,
): Promise<Ending> {
  const sleep = deps.sleep ?? sleepUnlessOnline;
  const now = deps.now ?? Date.now;
  let current = body;
  let attempt = 0;
  let droppedAt = now();
  let wait = 0; // before the first resume of a reload: none

  const onEvent = (event: string, data: Record<string, unknown>, id: number | null) => {
    if (position.lastEventId >= 0) {
      if (id === null) position.lastEventId = -1;
      else if (id <= position.lastEventId) return;
      else position.lastEventId = id;
    }
    if (!position.streamId && typeof data.stream_id === "string")
      position.streamId = data.stream_id;
    hooks.event(event, data);
  };

  for (;;) {
    if (current) {
      const before = position.lastEventId;
      let end: StreamEnd | null = null;
      try {
        end = await read(current, onEvent, now);
      } catch (e) {
        if (signal.aborted) throw signal.reason ?? e;
      }
      if (end) return { kind: "end", end };
      if (!position.streamId || position.lastEventId < 0) return { kind: "dropped" };
      // A connection that brought something new starts the count again; one that did not
      // (a proxy that cuts every stream at once) must not keep the page trying for ever.
      if (position.lastEventId > before) {
        attempt = 0;
        droppedAt = now();
      }
      current = null;
      wait = BACKOFF_MS[Math.min(attempt++, BACKOFF_MS.length - 1)] as number;
    }
    if (now() - droppedAt + wait > GIVE_UP_MS) return { kind: "gave-up" };
    if (wait > 0) {
      hooks.reconnecting(wait);
      await sleep(wait, signal);
    }
    wait = BACKOFF_MS[Math.min(attempt++, BACKOFF_MS.length - 1)] as number;
    let res: Response;
    try {
      res = await deps.resume(position.streamId, position.lastEventId, signal);
    } catch (e) {
      if (signal.aborted) throw signal.reason ?? e;
      continue; // still offline
    }
    if (res.status === 404) return { kind: "gone" };
    if (res.status === 204) return { kind: "complete" };
    if (res.ok && res.body) {
      hooks.reconnected();
      current = res.body;
      continue;
    }
    const error = await readApiError(res);
    if (res.status !== 408 && res.status !== 429 && res.status < 500)
      return { kind: "refused", error };
    // Busy or limited: wait as long as the server asks, within the same deadline.
    if (error.retryAfter) wait = Math.max(wait, error.retryAfter * 1000);
  }
}
