/**
 * @module The meter: upstream events in, `message_chunk` and `reasoning_chunk` frames out, cost
 * counted and capped (reasoning tokens are output tokens).
 */
import { costMicroUsd, estimateInputTokens, estimateTokens, toUsd } from "./cost";
import type { Frame } from "./frames";
import type { ModelInfo } from "./models";
import type { PromptMessage } from "./prompt";
import type { UpstreamEvent } from "./providers/provider";

/** What the meter knows at any moment; read by the session for `done` and the ledger. */
export interface MeterState {
  outputTokens: number;
  /** The upstream's own count, when it sent one. */
  usage: { inputTokens: number; outputTokens: number } | null;
  finishReason: string | null;
  /** Set when the running cost reached the cap: the session stops the stream. */
  capped: boolean;
  firstTokenAt: number | null;
}

/** Final figures for `done` and the ledger. */
export function meterTotals(model: ModelInfo, prompt: readonly PromptMessage[], state: MeterState) {
  const usage = state.usage;
  const inputTokens = usage?.inputTokens ?? estimateInputTokens(prompt);
  const outputTokens = usage?.outputTokens ?? state.outputTokens;
  return {
    inputTokens,
    outputTokens,
    costMicroUsd: costMicroUsd(model, inputTokens, outputTokens),
    usageSource: usage ? ("upstream" as const) : ("estimated" as const),
  };
}

/** A fresh meter state. */
export function newMeterState(): MeterState {
  return { outputTokens: 0, usage: null, finishReason: null, capped: false, firstTokenAt: null };
}

/**
 * Counts output tokens as they pass and turns each delta into one `message_chunk` with the
 * running cost, and each piece of reasoning into one `reasoning_chunk`. A delta that would take the cost over `capMicroUsd` is not forwarded: the
 * state turns `capped` and every later event is dropped. A plain function, not a
 * TransformStream: on workerd each stream stage costs a construction and a promise hop per
 * chunk, and the session already holds the one loop that reads the upstream.
 */
export function createMeter(
  model: ModelInfo,
  prompt: readonly PromptMessage[],
  capMicroUsd: number,
  state: MeterState = newMeterState(),
  now = () => Date.now(),
): { state: MeterState; take(event: UpstreamEvent): Frame | null } {
  const inputEstimate = estimateInputTokens(prompt);
  return {
    state,
    take(event) {
      if (state.capped) return null;
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
      if (event.type === "reasoning") {
        return { event: "reasoning_chunk", data: { content: event.text } };
      }
      return {
        event: "message_chunk",
        data: { content: event.text, output_tokens: state.outputTokens, cost_usd: toUsd(cost) },
      };
    },
  };
}
