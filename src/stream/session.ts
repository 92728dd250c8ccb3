/**
 * @module One stream from start to end: upstream events through the meter into SSE frames,
 * heartbeats while open, exactly one terminal frame, and a summary for the ledger.
 */
import type { FinishReason, StreamOutcome } from "../ledger/record";
import { toUsd } from "./cost";
import { type DoneData, type Encoder, type Frame, frameEncoder } from "./frames";
import { createMeter, meterTotals, newMeterState } from "./meter";
import type { ModelInfo } from "./models";
import type { PromptMessage, Tooling } from "./prompt";
import type { ProviderStream } from "./providers/provider";

export interface SessionOptions {
  streamId: string;
  model: ModelInfo;
  /** The whole prompt, for the input estimate when the upstream reports no usage. */
  prompt: readonly PromptMessage[];
  /** The request's tools and response format: in the input bound like the prompt. */
  tooling?: Tooling;
  capMicroUsd: number;
  /** The `max_tokens` the upstream was sent: the bound of what it can bill as output. */
  maxTokens: number;
  heartbeatMs: number;
  /** The stream ends at `startedAt` plus this (the admission's time, so before its hold expires). */
  maxDurationMs: number;
  /** An upstream silent for this long mid-stream counts as failed. */
  idleTimeoutMs: number;
  /**
   * An upstream silent for this long before its first event counts as failed: a reasoning
   * model thinks in silence, so this is longer than the idle timeout (and may be the max duration).
   */
  firstTokenTimeoutMs: number;
  /** When the stream was admitted: the max duration, `ttft_ms` and `duration_ms` count from it. */
  startedAt: number;
  /** Aborting it cancels the upstream request. */
  upstreamAbort: AbortController;
  /** Extra fields for `done` (the anonymous quota). */
  doneExtras?: Pick<DoneData, "quota">;
  /** The wire format; our SSE events by default. */
  encode?: Encoder;
}

/** How a stream ended: what `done` said and what the ledger records. */
export interface StreamSummary extends StreamOutcome {
  /** True when the upstream failed before its first token (the quota is given back). */
  failedBeforeFirstToken: boolean;
}

/** Frames a client may fall behind by before the stream is cut off. */
export const MAX_QUEUED_FRAMES = 256;

const FINISH: Record<string, FinishReason> = {
  stop: "stop",
  length: "length",
  content_filter: "content_filter",
};

/**
 * The outcome of a stream whose upstream was asked but never answered (the client left, or the
 * max duration passed, before its headers): no usage, so the bound of the prompt (and, for a
 * reasoning model, of the hidden reasoning it may have started).
 */
export function promptOnly(
  model: ModelInfo,
  prompt: readonly PromptMessage[],
  startedAt: number,
  maxTokens: number,
  finishReason: FinishReason = "client_abort",
  tooling?: Tooling,
): StreamSummary {
  const totals = meterTotals(
    model,
    prompt,
    newMeterState(),
    { maxTokens, ended: false, hidden: model.reasoning },
    tooling,
  );
  return {
    ...totals,
    finishReason,
    ttftMs: null,
    durationMs: Date.now() - startedAt,
    failedBeforeFirstToken: false,
  };
}

/**
 * Starts pumping `upstream` into an SSE body. `finished` settles after the terminal frame.
 *
 * One loop and one native byte stream: each upstream read is metered and encoded in place and
 * written, as one chunk, to an IdentityTransformStream whose readable side is the response
 * body, which the runtime sends without running JavaScript per chunk. A chain of JS
 * TransformStreams (pipeThrough) costs on workerd a construction per stage per request and
 * keeps promise reactions for every chunk until the stream ends.
 */
export function runSession(
  upstream: ProviderStream,
  o: SessionOptions,
): { body: ReadableStream<Uint8Array>; finished: Promise<StreamSummary> } {
  const { readable, writable } = new IdentityTransformStream();
  const writer = writable.getWriter();
  const encode = o.encode ?? frameEncoder();
  const meter = createMeter(o.model, o.prompt, o.capMicroUsd, undefined, undefined, o.tooling);
  const state = meter.state;
  const signal = o.upstreamAbort.signal;
  let stop: FinishReason | null = null;
  let clientGone = false;
  /** Frames written that the client has not taken yet. */
  let queued = 0;

  const halt = (reason: FinishReason) => {
    stop ??= reason;
    o.upstreamAbort.abort(reason);
  };
  // The client cancelled the body: stop the upstream at once.
  writer.closed.catch(() => {
    clientGone = true;
    halt("client_abort");
  });
  // Cut off for falling behind: still connected, so it gets what is queued, then the end.
  let cutOff = false;
  // Any abort (the client left, a halt) ends the pending read at once. For a client that is
  // gone, the body is aborted too: what is queued for it is dropped now, not kept until the
  // runtime notices the connection is closed.
  const onAbort = () => {
    if (signal.reason === "client_abort" && !clientGone) {
      clientGone = true;
      if (!cutOff) void writer.abort("client_abort").catch(() => {});
    }
    // A stop by the stream's owner (DELETE) is `stopped`; anything else a client that left.
    stop ??= signal.reason === "stopped" ? "stopped" : "client_abort";
    void upstream.events.cancel(signal.reason).catch(() => {});
  };
  signal.addEventListener("abort", onAbort, { once: true });
  // The client may have left between the upstream's answer and this line.
  if (signal.aborted) onAbort();
  const send = (frames: Frame[]) => {
    if (clientGone || frames.length === 0) return;
    const bytes = encode(frames);
    if (bytes === null) return;
    queued += frames.length;
    writer.write(bytes).then(
      () => {
        queued -= frames.length;
      },
      () => {},
    );
  };

  const heartbeat = setInterval(
    () => send([{ event: "heartbeat", data: { ts: Date.now() } }]),
    o.heartbeatMs,
  );
  const maxTimer = setTimeout(
    () => halt("max_duration"),
    Math.max(0, o.startedAt + o.maxDurationMs - Date.now()),
  );

  // The idle watch: one timer that, when it fires, re-arms for what is left of the window since
  // the last upstream read, instead of a timer set and cleared around every read (per token).
  // Until the upstream's first event the window is the first-token timeout: silence then is
  // thinking, not a stall.
  let lastRead = Date.now();
  let heard = false;
  let idleFired = false;
  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  const quietLimit = () => (heard ? o.idleTimeoutMs : o.firstTokenTimeoutMs);
  const watchIdle = () => {
    const quietFor = Date.now() - lastRead;
    if (quietFor < quietLimit()) {
      idleTimer = setTimeout(watchIdle, quietLimit() - quietFor);
      return;
    }
    idleFired = true;
    void upstream.events.cancel("idle").catch(() => {});
  };
  idleTimer = setTimeout(watchIdle, quietLimit());

  const finished = (async (): Promise<StreamSummary> => {
    let failed = false;
    /** The upstream ended on its own: its last usage, if nothing came after it, is final. */
    let ended = false;
    try {
      for (;;) {
        const events = await upstream.events.read();
        lastRead = Date.now();
        if (events === null) {
          ended = stop === null && !idleFired;
          break;
        }
        if (!heard && events.length > 0) {
          // Once, at the first event: the watch's window shrinks from first-token to idle.
          heard = true;
          clearTimeout(idleTimer);
          idleTimer = setTimeout(watchIdle, o.idleTimeoutMs);
        }
        const frames: Frame[] = [];
        // Metered (and sent, if anyone is listening) even when a stop came during the read: the
        // upstream produced it and bills it.
        for (const event of events) {
          const frame = meter.take(event);
          if (frame) frames.push(frame);
        }
        // Not awaited: the meter counts what the upstream produced, whether or not the client
        // keeps up. A client that stops reading (but stays connected) is cut off once it is
        // MAX_QUEUED_FRAMES behind, so memory stays bounded and nothing waits on it.
        send(frames);
        if (stop !== null) break;
        if (state.capped) {
          halt("cost_cap");
          break;
        }
        if (queued > MAX_QUEUED_FRAMES) {
          cutOff = true;
          halt("client_abort");
          break;
        }
      }
      if (idleFired && stop === null) {
        failed = true;
        ended = false;
      }
    } catch {
      if (stop === null) failed = true;
    } finally {
      clearInterval(heartbeat);
      clearTimeout(maxTimer);
      clearTimeout(idleTimer);
      signal.removeEventListener("abort", onAbort);
      void upstream.events.cancel().catch(() => {});
      if (failed) o.upstreamAbort.abort("upstream_error");
    }

    const totals = meterTotals(
      o.model,
      o.prompt,
      state,
      { maxTokens: o.maxTokens, ended, hidden: o.model.reasoning },
      o.tooling,
    );
    const finishReason: FinishReason = failed
      ? "upstream_error"
      : (stop ?? FINISH[state.finishReason ?? "stop"] ?? "stop");
    const summary: StreamSummary = {
      finishReason,
      ...totals,
      ttftMs: state.firstTokenAt === null ? null : state.firstTokenAt - o.startedAt,
      durationMs: Date.now() - o.startedAt,
      failedBeforeFirstToken: failed && state.firstTokenAt === null,
    };
    // The terminal frame and the close are queued, not awaited: the summary (and so the ledger)
    // must not wait on a client that reads slowly or never again.
    send([
      failed
        ? {
            event: "error",
            data: {
              error_code: "upstream_error",
              detail: "the model provider failed mid-stream",
              retry_after: null,
            },
          }
        : {
            event: "done",
            data: {
              stream_id: o.streamId,
              model: o.model.id,
              provider: upstream.provider,
              upstream_model: upstream.upstreamModel ?? null,
              input_tokens: summary.inputTokens,
              output_tokens: summary.outputTokens,
              cost_usd: toUsd(summary.costMicroUsd),
              ttft_ms: summary.ttftMs,
              duration_ms: summary.durationMs,
              finish_reason: finishReason,
              usage_source: summary.usageSource,
              ...o.doneExtras,
            },
          },
    ]);
    // Also when only the request's signal said the client left: nothing has cancelled the body
    // yet, so end it, or it stays open with no writer.
    void writer.close().catch(() => {});
    return summary;
  })();
  return { body: readable, finished };
}
