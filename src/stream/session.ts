/**
 * @module One stream from start to end: upstream events through the meter into SSE frames,
 * heartbeats while open, exactly one terminal frame, and a summary for the ledger.
 */
import type { FinishReason, StreamOutcome } from "../ledger/record";
import { toUsd } from "./cost";
import { type Frame, sseEncoder } from "./frames";
import { createMeter, meterTotals, newMeterState } from "./meter";
import type { ModelInfo } from "./models";
import type { ProviderStream, UpstreamEvent } from "./providers/provider";

export interface SessionOptions {
  streamId: string;
  model: ModelInfo;
  message: string;
  capMicroUsd: number;
  heartbeatMs: number;
  maxDurationMs: number;
  /** An upstream silent for this long mid-stream counts as failed. */
  idleTimeoutMs: number;
  startedAt: number;
  /** Aborting it cancels the upstream request. */
  upstreamAbort: AbortController;
  /** Extra fields for `done` (the anonymous quota). */
  doneExtras?: Record<string, unknown>;
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

/** The outcome of a stream the client left before the upstream answered: the prompt alone. */
export function promptOnly(model: ModelInfo, message: string, startedAt: number): StreamSummary {
  const totals = meterTotals(model, message, newMeterState());
  return {
    ...totals,
    finishReason: "client_abort",
    ttftMs: null,
    durationMs: Date.now() - startedAt,
    failedBeforeFirstToken: false,
  };
}

/** One chunk of everything in `parts`. */
function joined(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/**
 * Starts pumping `upstream` into an SSE body. `finished` settles after the terminal frame.
 *
 * The body is one pull-based ReadableStream, with no pipe or writer in the response path: the
 * session queues encoded frames in an array of its own and hands them over when the runtime
 * pulls. Its `cancel` is the client's disconnect; when the client is gone the queue is dropped
 * and the body closed. A chain of TransformStreams instead keeps, for every client that leaves,
 * the whole chain with its queued writes alive in workerd (a pipe stalled on a body nobody
 * reads anymore holds its streams from native code), about 14 KiB per stream.
 */
export function runSession(
  upstream: ProviderStream,
  o: SessionOptions,
): { body: ReadableStream<Uint8Array>; finished: Promise<StreamSummary> } {
  const state = newMeterState();
  const meter = createMeter(o.model, o.message, o.capMicroUsd, state);
  const encode = sseEncoder();
  const abortSignal = o.upstreamAbort.signal;
  let stop: FinishReason | null = null;
  let clientGone = false;

  // The body. `queue`: encoded frames not yet pulled; `pulled`: resolves the pending pull;
  // `ended`: no frame will follow, close once the queue is drained; `closed`: closed or cancelled.
  let queue: Uint8Array[] = [];
  let pulled: (() => void) | null = null;
  let ended = false;
  let closed = false;
  let body!: ReadableStreamDefaultController<Uint8Array>;
  const settlePull = () => {
    const resolve = pulled;
    pulled = null;
    resolve?.();
  };
  const deliver = () => {
    if (closed) return;
    if (pulled && queue.length > 0) {
      body.enqueue(joined(queue));
      queue = [];
      settlePull();
    }
    if (ended && queue.length === 0) {
      closed = true;
      body.close();
      settlePull();
    }
  };
  const halt = (reason: FinishReason) => {
    stop ??= reason;
    o.upstreamAbort.abort(reason);
  };
  const stream = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        body = controller;
      },
      pull() {
        return new Promise<void>((resolve) => {
          pulled = resolve;
          deliver();
        });
      },
      // The client cancelled the body (the runtime does so when the connection goes away):
      // stop the upstream at once.
      cancel() {
        closed = true;
        clientGone = true;
        queue = [];
        settlePull();
        halt("client_abort");
      },
    },
    { highWaterMark: 0 },
  );
  const send = (frame: Frame) => {
    if (clientGone || ended) return;
    queue.push(encode(frame));
    deliver();
  };

  const heartbeat = setInterval(
    () => send({ event: "heartbeat", data: { ts: Date.now() } }),
    o.heartbeatMs,
  );
  const maxTimer = setTimeout(() => halt("max_duration"), o.maxDurationMs);

  const finished = (async (): Promise<StreamSummary> => {
    let failed = false;
    const reader = upstream.events.getReader();
    // Stopping (an abort, an idle upstream) cancels the reader, so a pending read resolves as
    // done. No promise outlives one read: racing each read against a stream-long promise
    // would pile one reaction per token onto it for the whole stream.
    let idleFired = false;
    const stopReading = () => void reader.cancel().catch(() => {});
    const onAbort = () => {
      // Aborted for a gone client (by the request's signal, or cut off for falling behind):
      // nobody will read what is queued.
      if (abortSignal.reason === "client_abort") {
        clientGone = true;
        queue = [];
      }
      stop ??= "client_abort";
      stopReading();
    };
    if (abortSignal.aborted) onAbort();
    else abortSignal.addEventListener("abort", onAbort, { once: true });
    try {
      while (!abortSignal.aborted) {
        const idle = setTimeout(() => {
          idleFired = true;
          stopReading();
        }, o.idleTimeoutMs);
        let read: ReadableStreamReadResult<UpstreamEvent>;
        try {
          read = await reader.read();
        } finally {
          clearTimeout(idle);
        }
        if (read.done) break;
        const frame = meter(read.value);
        if (state.capped) break;
        // The meter counts what the upstream produced, whether or not the client keeps up. A
        // client that stops reading (but stays connected) is cut off once it is
        // MAX_QUEUED_FRAMES behind, so memory stays bounded and nothing waits on it.
        if (frame) send(frame);
        if (queue.length > MAX_QUEUED_FRAMES) {
          halt("client_abort");
          break;
        }
      }
      if (idleFired && stop === null) failed = true;
      if (state.capped) halt("cost_cap");
    } catch {
      if (stop === null) failed = true;
    } finally {
      clearInterval(heartbeat);
      clearTimeout(maxTimer);
      abortSignal.removeEventListener("abort", onAbort);
      stopReading();
      if (failed) o.upstreamAbort.abort("upstream_error");
    }

    const totals = meterTotals(o.model, o.message, state);
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
    // must not wait on a client that reads slowly or never again. A gone client gets neither:
    // the body just ends.
    if (failed) {
      send({
        event: "error",
        data: {
          error_code: "upstream_error",
          detail: "the model provider failed mid-stream",
          retry_after: null,
        },
      });
    } else {
      send({
        event: "done",
        data: {
          stream_id: o.streamId,
          model: o.model.id,
          provider: upstream.provider,
          input_tokens: summary.inputTokens,
          output_tokens: summary.outputTokens,
          cost_usd: toUsd(summary.costMicroUsd),
          ttft_ms: summary.ttftMs,
          duration_ms: summary.durationMs,
          finish_reason: finishReason,
          usage_source: summary.usageSource,
          ...o.doneExtras,
        },
      });
    }
    ended = true;
    deliver();
    return summary;
  })();
  return { body: stream, finished };
}
