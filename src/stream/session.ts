/**
 * @module One stream from start to end: upstream events through the meter into SSE frames,
 * heartbeats while open, exactly one terminal frame, and a summary for the ledger.
 */
import type { FinishReason, StreamOutcome } from "../ledger/record";
import { toUsd } from "./cost";
import { type Frame, SseEncodeStage } from "./frames";
import { MeterStage, meterTotals, newMeterState } from "./meter";
import type { ModelInfo } from "./models";
import type { ProviderStream } from "./providers/provider";

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

/** Starts pumping `upstream` into an SSE body. `finished` settles after the terminal frame. */
export function runSession(
  upstream: ProviderStream,
  o: SessionOptions,
): { body: ReadableStream<Uint8Array>; finished: Promise<StreamSummary> } {
  const out = new TransformStream<Frame, Frame>();
  const body = out.readable.pipeThrough(new SseEncodeStage());
  const writer = out.writable.getWriter();
  const state = newMeterState();
  let stop: FinishReason | null = null;
  let clientGone = false;

  const halt = (reason: FinishReason) => {
    stop ??= reason;
    o.upstreamAbort.abort(reason);
  };
  // The client cancelled the body: stop the upstream at once.
  writer.closed.catch(() => {
    clientGone = true;
    halt("client_abort");
  });
  o.upstreamAbort.signal.addEventListener("abort", () => {
    if (o.upstreamAbort.signal.reason === "client_abort") clientGone = true;
    stop ??= "client_abort";
  });
  const send = (frame: Frame) =>
    clientGone ? Promise.resolve() : writer.write(frame).catch(() => {});

  const heartbeat = setInterval(
    () => void send({ event: "heartbeat", data: { ts: Date.now() } }),
    o.heartbeatMs,
  );
  const maxTimer = setTimeout(() => halt("max_duration"), o.maxDurationMs);

  const finished = (async (): Promise<StreamSummary> => {
    let failed = false;
    const reader = upstream.events
      .pipeThrough(new MeterStage(o.model, o.message, o.capMicroUsd, state))
      .getReader();
    // Stopping (an abort, an idle upstream) cancels the reader, so a pending read resolves as
    // done. No promise outlives one read: racing each read against a stream-long promise
    // would pile one reaction per token onto it for the whole stream.
    let idleFired = false;
    const stopReading = () => void reader.cancel().catch(() => {});
    o.upstreamAbort.signal.addEventListener("abort", stopReading, { once: true });
    try {
      for (;;) {
        const idle = setTimeout(() => {
          idleFired = true;
          stopReading();
        }, o.idleTimeoutMs);
        let read: ReadableStreamReadResult<Frame>;
        try {
          read = await reader.read();
        } finally {
          clearTimeout(idle);
        }
        if (read.done) break;
        // Not awaited: the meter counts what the upstream produced, whether or not the client
        // keeps up. A client that stops reading (but stays connected) is cut off once it is
        // MAX_QUEUED_FRAMES behind, so memory stays bounded and nothing waits on it.
        void send(read.value);
        if ((writer.desiredSize ?? 0) < -MAX_QUEUED_FRAMES) {
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
      o.upstreamAbort.signal.removeEventListener("abort", stopReading);
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
    // must not wait on a client that reads slowly or never again.
    if (failed) {
      void send({
        event: "error",
        data: {
          error_code: "upstream_error",
          detail: "the model provider failed mid-stream",
          retry_after: null,
        },
      });
    } else {
      void send({
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
    // Also when only the request's signal said the client left: nothing has cancelled the body
    // yet, so end it, or it stays open with no writer. Not `abort()`, which workerd reports as an
    // uncaught exception when it is still pumping the body to the (closing) connection.
    void writer.close().catch(() => {});
    return summary;
  })();
  return { body, finished };
}
