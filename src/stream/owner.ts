/**
 * @module The stream owner: one Durable Object per principal that runs its resumable streams
 * (the upstream, the meter, the ledger record: admitted.ts, as the direct path does), keeps
 * their frames, and serves their readers. It outlives any one connection, so a reader that
 * drops can come back; its storage outlives its memory, so an ended stream can be read after a
 * restart until the alarm deletes it, STREAM_RESUME_TTL_S after the end. One object per
 * principal, not per stream: a returning user's object is warm and its SQLite exists, so a new
 * stream creates no object and no schema.
 */
import { DurableObject } from "cloudflare:workers";
import { type Config, configFor } from "../config";
import type { Bindings } from "../env";
import { AppError, type ErrorCode, sseFrame } from "../errors";
import type { StreamRequest } from "../input/request";
import type { HoldTicket } from "../limits/budget";
import { storeFor } from "../limits/select-store";
import type { QuotaResult } from "../limits/store";
import { createLogger, type LogFields } from "../observe/log";
import { accessFields, runAdmitted } from "./admitted";
import { FrameStore } from "./frame-store";
import { LiveStream } from "./live-stream";

/** What the worker sends to start a stream (structured-clonable: the model by id). */
export interface StartRequest {
  /** The worker's vars that differ from this object's own env (tests; none in production). */
  overrides: Record<string, unknown>;
  /**
   * Names the worker's env object: the owner keeps one config (and so one provider, with its
   * breakers) per worker env, as the worker does, never one shared by two envs.
   */
  envKey: string;
  requestId: string;
  userKey: string;
  input: Omit<StreamRequest, "model"> & { model: string };
  grant: { capMicroUsd: number; maxTokens: number; hold: HoldTicket; quota: QuotaResult | null };
  /** When the quota unit was spent (its refund goes back to that bucket); null: none spent. */
  quotaSpentAt: number | null;
}

/** A reader's end of the stream: its body, and a way to say its client left. */
export interface ReaderAnswer {
  kind: "reading";
  body: ReadableStream<Uint8Array>;
  leave: () => void;
}

/** The answer to a start. */
export type StartAnswer =
  | (ReaderAnswer & {
      /** Fields for the request's access line known when the upstream answered. */
      report: LogFields;
      /** Resolves with the stream's access fields once it is recorded. */
      finished: () => Promise<LogFields>;
    })
  | { kind: "exists" }
  | { kind: "gone" }
  /** A DELETE of this id came first (STOP_AHEAD_MS ago at most): the stream does not run. */
  | { kind: "stopped" }
  | {
      kind: "refused";
      error: { code: ErrorCode; detail: string; retryAfter: number | null };
    };

/** The answer to a resume. */
export type ResumeAnswer = ReaderAnswer | { kind: "past_end" } | { kind: "unknown" };

/**
 * How long (ms) a DELETE of an id this owner does not know stops that id's start: a client that
 * stops right after sending may reach the owner before its own start does (the start waits for
 * the limit checks), and its stream must not run. Far longer than any admission takes.
 */
export const STOP_AHEAD_MS = 30_000;

/**
 * The worker's env as the owner sees it, by the key the worker gave it: the owner's own env
 * with the worker's overrides (none in production, where it is the owner's own env object).
 * Configs are parsed and kept by configFor, keyed by env object, as the worker's are.
 */
const envs = new Map<string, Bindings>();
function configOf(env: Bindings, overrides: Record<string, unknown>, key: string): Config {
  let merged = Object.keys(overrides).length === 0 ? env : envs.get(key);
  if (!merged) {
    const vars: Record<string, unknown> = { ...env };
    for (const [k, v] of Object.entries(overrides)) {
      if (v === null) delete vars[k];
      else vars[k] = v;
    }
    merged = vars as unknown as Bindings;
    if (envs.size >= 32) envs.clear();
    envs.set(key, merged);
  }
  const known = configFor(merged);
  // The worker parsed the same vars before it admitted the stream: an error cannot happen here.
  if ("error" in known) throw known.error;
  return known.config;
}

interface Running {
  live: LiveStream;
  upstreamAbort: AbortController;
}

/** One principal's streams' owner; its name is the store prefix and the principal's key. */
export class StreamOwner extends DurableObject<Bindings> {
  private readonly store: FrameStore;
  /** The live streams by id (an ended one leaves: storage answers for it). */
  private readonly running = new Map<string, Running>();
  /** When a DELETE came for an id this owner did not know; memory only, see stop(). */
  private readonly stoppedAhead = new Map<string, number>();
  /** When the alarm is set for (null: none), as this object set it or found it. */
  private alarmAt: number | null = null;
  /** The resume TTL of the last stream started here (0: none yet; see ttlMs). */
  private lastTtlMs = 0;

  constructor(ctx: DurableObjectState, env: Bindings) {
    super(ctx, env);
    this.store = new FrameStore(ctx.storage.sql);
    void ctx.blockConcurrencyWhile(async () => {
      this.alarmAt = await ctx.storage.getAlarm();
    });
  }

  /** The alarm at `at` unless it is set earlier already: one alarm, the earliest expiry. */
  private expireAt(at: number): void {
    if (this.alarmAt !== null && this.alarmAt <= at) return;
    this.alarmAt = at;
    void this.ctx.storage.setAlarm(at);
  }

  /** Starts the stream unless this principal's stream of that id is still live (409). */
  async start(req: StartRequest): Promise<StartAnswer> {
    const { streamId } = req.input;
    if (this.running.has(streamId)) return { kind: "exists" };
    const stoppedAhead = this.stoppedAhead.get(streamId);
    if (stoppedAhead !== undefined) {
      this.stoppedAhead.delete(streamId);
      if (Date.now() - stoppedAhead < STOP_AHEAD_MS) return { kind: "stopped" };
    }
    const config = configOf(this.env, req.overrides, req.envKey);
    const model = config.registry.models.get(req.input.model);
    if (!model) throw new Error(`unknown model ${req.input.model}`);
    const input: StreamRequest = { ...req.input, model };
    const log = createLogger(req.requestId);
    const store = storeFor(config, this.env);
    const upstreamAbort = new AbortController();
    const ttlMs = config.streamResumeTtlS * 1000;
    this.lastTtlMs = ttlMs;
    const live = new LiveStream(streamId, {
      store: this.store,
      graceMs: config.streamOrphanGraceMs,
      onOrphaned: () => upstreamAbort.abort("orphaned"),
      // While live, a safety net for an object restarted mid-stream: its rows go after the
      // longest a stream can last plus the TTL. The last row (the end) says TTL after the end.
      expiresAt: (endedAt) =>
        endedAt === null
          ? Date.now() + config.streamMaxDurationMs + ttlMs + 60_000
          : endedAt + ttlMs,
      onStored: (at) => this.expireAt(at),
      onEnded: () => {
        if (this.running.get(streamId) === running) this.running.delete(streamId);
      },
    });
    const running: Running = { live, upstreamAbort };
    // Taken before the first await: a second start of this id is a 409 from here on.
    this.running.set(streamId, running);
    // An earlier stream of this id is on disk (ended: a live one is a 409 above). The new one
    // replaces it now, not at its first batch, or a restart before that batch would resume the
    // old stream under the new one's id. A fresh id (the usual case) writes nothing here: its
    // first row goes with its first batch. Writes (the old rows' deletion, a marker row) before
    // the upstream call only when an id is reused; in production the output gate holds that
    // call until they are durable.
    if (this.store.stream(streamId) !== null) live.replace();
    // The first reader is there before the first frame.
    const reader = live.join(0);
    const { quotaSpentAt } = req;
    let refunded = false;
    const report: LogFields = {};
    let started: Awaited<ReturnType<typeof runAdmitted>>;
    try {
      started = await runAdmitted({
        config,
        store,
        log,
        input,
        userKey: req.userKey,
        grant: {
          ...req.grant,
          refund: async () => {
            if (quotaSpentAt === null || refunded) return;
            refunded = true;
            await store.refundQuota(req.userKey, quotaSpentAt);
          },
        },
        encode: live.encoder(),
        upstreamAbort,
        report: (fields) => Object.assign(report, fields),
        waitUntil: (work) => void work.catch(() => {}),
        endFields: () => ({ storage_writes: this.store.writesOf(streamId) }),
      });
    } catch (e) {
      this.forget(running);
      const error = e instanceof AppError ? e : null;
      if (!error) throw e;
      return {
        kind: "refused",
        error: { code: error.code, detail: error.detail, retryAfter: error.retryAfter },
      };
    }
    if (started.kind === "gone") {
      this.forget(running);
      return { kind: "gone" };
    }
    const { session, recorded } = started;
    // Nothing is written to the session's own body (the encoder fans out to the readers); it
    // is left alone, since cancelling it would tell the session its client left.
    const fields = session.finished.then(async (summary) => {
      await recorded.catch(() => {});
      return accessFields(input.streamId, summary);
    });
    return {
      ...reader,
      kind: "reading",
      report,
      finished: () => fields,
    };
  }

  /** A start that never ran: nothing of it is kept. */
  private forget(running: Running): void {
    running.live.dispose();
    // It replaced an earlier stream on disk and never ran: nothing of either is kept, so a
    // resume answers 404 rather than an interruption.
    const streamId = running.live.streamId;
    if (running.live.begun && !running.live.ended) this.store.clear(streamId);
    if (this.running.get(streamId) === running) this.running.delete(streamId);
  }

  /** A reader of `streamId` from after event `after`: the rest of it, live or stored. */
  async resume(streamId: string, after: number): Promise<ResumeAnswer> {
    const running = this.running.get(streamId);
    if (running && !running.live.ended) return { kind: "reading", ...running.live.join(after) };
    const stored = this.store.stream(streamId);
    if (!stored) return { kind: "unknown" };
    let lastId = stored.lastId;
    const frames = this.store.framesAfter(streamId, after);
    if (stored.state === "live") {
      // Stored as live, but no session runs here: the object was restarted mid-stream. The
      // stream cannot go on; it ends here with an error, so that no reader waits forever.
      // Its id follows the last one this reader had too: frames sent but not yet stored were
      // lost with the restart, and a reader that had them must still get the error, not a 204
      // that says it has the whole stream.
      lastId = Math.max(lastId, after) + 1;
      const text = sseFrame(
        "error",
        {
          error_code: "upstream_error",
          detail: "the stream was interrupted",
          retry_after: null,
        },
        lastId,
      );
      const now = Date.now();
      const expiresAt = now + this.ttlMs();
      this.store.append(streamId, { first: lastId, last: lastId, text }, now, expiresAt);
      this.expireAt(expiresAt);
      if (lastId > after) frames.push({ id: lastId, text });
    }
    if (after >= lastId || frames.length === 0) return { kind: "past_end" };
    const body = new Response(frames.map((f) => f.text).join(""))
      .body as ReadableStream<Uint8Array>;
    return { kind: "reading", body, leave: () => {} };
  }

  /**
   * Stops the stream at once (`stopped`): "stopped", "ended", or "unknown". An unknown id may
   * be a stream whose start is still on its way (the client stopped right after sending): a
   * start within STOP_AHEAD_MS does not run. Kept in memory, not storage: the start follows
   * within moments, and a DELETE of an unknown id then costs no write.
   */
  stop(streamId: string): "stopped" | "ended" | "unknown" {
    const running = this.running.get(streamId);
    if (running && !running.live.ended) {
      running.upstreamAbort.abort("stopped");
      return "stopped";
    }
    if (this.store.stream(streamId)) return "ended";
    const now = Date.now();
    for (const [id, at] of this.stoppedAhead) {
      if (now - at >= STOP_AHEAD_MS) this.stoppedAhead.delete(id);
    }
    this.stoppedAhead.set(streamId, now);
    return "unknown";
  }

  /** The storage writes of `streamId` so far (for the bench and tests). */
  writes(streamId: string): number {
    return this.store.writesOf(streamId);
  }

  /**
   * The earliest expiry came (STREAM_RESUME_TTL_S after a stream's end): every stream expired
   * by then goes, and the alarm moves to the next expiry.
   */
  override async alarm(): Promise<void> {
    const cutoff = Math.max(Date.now(), this.alarmAt ?? 0);
    this.alarmAt = null;
    const next = this.store.sweep(cutoff, this.running.keys());
    // A stream running past its safety net (never, by the max duration) is looked at again later.
    if (next !== null) this.expireAt(next <= cutoff ? Date.now() + 60_000 : next);
  }

  private ttlMs(): number {
    return this.lastTtlMs || configOf(this.env, {}, "").streamResumeTtlS * 1000 || 600_000;
  }
}
