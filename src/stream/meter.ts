/** @module The metering stage: upstream events in, `message_chunk` frames out, cost counted and capped. */
import { costMicroUsd, estimateInputTokens, estimateTokens, toUsd } from "./cost";
import type { Frame } from "./frames";
import type { ModelInfo } from "./models";
import type { UpstreamEvent } from "./providers/provider";

/** What the meter knows at any moment; read by the session for `done` and the ledger. */
export interface MeterState {
  outputTokens: number;
  /** The upstream's own count, when it sent one. */
  usage: { inputTokens: number; outputTokens: number } | null;
  finishReason: string | null;
  /** Set when the running cost reached the cap and the stage stopped the stream. */
  capped: boolean;
  firstTokenAt: number | null;
}

/** Final figures for `done` and the ledger. */
export function meterTotals(model: ModelInfo, message: string, state: MeterState) {
  const usage = state.usage;
  const inputTokens = usage?.inputTokens ?? estimateInputTokens(message);
  const outputTokens = usage?.outputTokens ?? state.outputTokens;
  return {
    inputTokens,
    outputTokens,
    costMicroUsd: costMicroUsd(model, inputTokens, outputTokens),
    usageSource: usage ? ("upstream" as const) : ("estimated" as const),
  };
}

/**
 * The meter of one stream: each upstream event in, the `message_chunk` frame to send out (null
 * for usage and finish events, which only update `state`). Counts output tokens and emits the
 * running cost; a delta that would take the cost over `capMicroUsd` is not forwarded: the state
 * is marked `capped` and null is returned, and the caller stops the stream.
 */
export function createMeter(
  model: ModelInfo,
  message: string,
  capMicroUsd: number,
  state: MeterState,
  now = () => Date.now(),
): (event: UpstreamEvent) => Frame | null {
  const inputEstimate = estimateInputTokens(message);
  return (event) => {
    if (event.type === "usage") {
      state.usage = { inputTokens: event.inputTokens, outputTokens: event.outputTokens };
      return null;
    }
    if (event.type === "finish") {
      state.finishReason = event.reason;
      return null;
    }
    const tokens = Math.max(1, estimateTokens(event.text));
    const cost = costMicroUsd(model, inputEstimate, state.outputTokens + tokens);
    if (cost > capMicroUsd) {
      state.capped = true;
      return null;
    }
    state.outputTokens += tokens;
    state.firstTokenAt ??= now();
    return {
      event: "message_chunk",
      data: { content: event.text, output_tokens: state.outputTokens, cost_usd: toUsd(cost) },
    };
  };
}

/**
 * The meter as a stream stage: one `message_chunk` per delta; at the cap it terminates, which
 * cancels the upstream. (The session calls `createMeter` directly, with no pipe in between.)
 */
export class MeterStage extends TransformStream<UpstreamEvent, Frame> {
  constructor(
    model: ModelInfo,
    message: string,
    capMicroUsd: number,
    state: MeterState,
    now = () => Date.now(),
  ) {
    const meter = createMeter(model, message, capMicroUsd, state, now);
    super({
      transform(event, controller) {
        const frame = meter(event);
        if (frame) controller.enqueue(frame);
        else if (state.capped) controller.terminate();
      },
    });
  }
}

/** A fresh meter state. */
export function newMeterState(): MeterState {
  return { outputTokens: 0, usage: null, finishReason: null, capped: false, firstTokenAt: null };
}
