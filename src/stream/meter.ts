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
 * Counts output tokens as they pass and emits one `message_chunk` per delta with the running
 * cost. A delta that would take the cost over `capMicroUsd` is not forwarded: the stage marks
 * the state `capped` and terminates, which cancels the upstream.
 */
export class MeterStage extends TransformStream<UpstreamEvent, Frame> {
  constructor(
    model: ModelInfo,
    message: string,
    capMicroUsd: number,
    state: MeterState,
    now = () => Date.now(),
  ) {
    const inputEstimate = estimateInputTokens(message);
    super({
      transform(event, controller) {
        if (event.type === "usage") {
          state.usage = { inputTokens: event.inputTokens, outputTokens: event.outputTokens };
          return;
        }
        if (event.type === "finish") {
          state.finishReason = event.reason;
          return;
        }
        const tokens = Math.max(1, estimateTokens(event.text));
        const cost = costMicroUsd(model, inputEstimate, state.outputTokens + tokens);
        if (cost > capMicroUsd) {
          state.capped = true;
          controller.terminate();
          return;
        }
        state.outputTokens += tokens;
        state.firstTokenAt ??= now();
        controller.enqueue({
          event: "message_chunk",
          data: { content: event.text, output_tokens: state.outputTokens, cost_usd: toUsd(cost) },
        });
      },
    });
  }
}

/** A fresh meter state. */
export function newMeterState(): MeterState {
  return { outputTokens: 0, usage: null, finishReason: null, capped: false, firstTokenAt: null };
}
