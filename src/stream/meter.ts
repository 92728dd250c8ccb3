/**
 * @module The meter: upstream events in, `message_chunk` and `reasoning_chunk` frames out, cost
 * counted and capped (reasoning tokens are output tokens).
 */
import {
  CHAT_OVERHEAD_TOKENS,
  costMicroUsd,
  estimateTokens,
  inputTokensUpperBound,
  textTokensUpperBound,
  toUsd,
} from "./cost";
import type { Frame } from "./frames";
import type { ModelInfo } from "./models";
import type { PromptMessage, Tooling } from "./prompt";
import type { UpstreamEvent } from "./providers/provider";

/** What the meter knows at any moment; read by the session for `done` and the ledger. */
export interface MeterState {
  /** The display estimate of the output so far (the running `output_tokens`). */
  outputTokens: number;
  /**
   * The most tokens the text received so far can have been billed as (its UTF-8 bytes), counting
   * every piece the upstream sent, also those the cap or a stop kept from the client.
   */
  outputBound: number;
  /** The upstream's own count, when it sent one. */
  usage: { inputTokens: number; outputTokens: number } | null;
  /** False when text arrived after `usage`: a count sent early is not the provider's final word. */
  usageFinal: boolean;
  finishReason: string | null;
  /**
   * The upstream said its generation ended (a finish reason, also after the cap): every token
   * it billed has then arrived. Until then it may be generating more than has arrived.
   */
  generationEnded: boolean;
  /** Set when the running cost reached the cap: the session stops the stream. */
  capped: boolean;
  firstTokenAt: number | null;
}

/** Final figures for `done` and the ledger. */
export interface MeterTotals {
  inputTokens: number;
  outputTokens: number;
  costMicroUsd: number;
  usageSource: "upstream" | "estimated";
}

/** What bounds a stream's output when the provider's final usage is missing. */
export interface OutputBound {
  /** The `max_tokens` the upstream was sent: it bills no more output than this. */
  maxTokens: number;
  /**
   * The upstream ended on its own (it finished, not stopped, cut or failed): only then is a
   * usage with no text after it the provider's final word.
   */
  ended: boolean;
  /** The model reasons before it answers: its hidden reasoning shows only in the final usage. */
  hidden: boolean;
}

/**
 * Final figures for `done` and the ledger. With the provider's final usage: exactly that.
 * Without it, an upper bound of what the provider can bill, never an estimate that can be lower:
 * - input at the bound the hold used (its UTF-8 bytes plus framing);
 * - output at `maxTokens` (which the provider was told, so it bills no more) unless the upstream
 *   said its generation ended: a stop, a cut or a cap reaches a provider later than its last
 *   token reached us, and it bills what it generated meanwhile, which nothing here can see;
 * - once it ended, the bytes of all the text that arrived (every token billed has arrived), at
 *   most `maxTokens`, or for a reasoning model, whose reasoning is hidden, `maxTokens` itself;
 * - neither ever below what was metered or what a usage that was not final said.
 * So a record without usage costs at most the stream's hold, and at least what the provider
 * can charge for it.
 */
export function meterTotals(
  model: ModelInfo,
  prompt: readonly PromptMessage[],
  state: MeterState,
  bound: OutputBound,
  tooling?: Tooling,
): MeterTotals {
  const usage = state.usage;
  if (usage && state.usageFinal && bound.ended) {
    return {
      inputTokens: usage.inputTokens,
      outputTokens: usage.outputTokens,
      costMicroUsd: costMicroUsd(model, usage.inputTokens, usage.outputTokens),
      usageSource: "upstream",
    };
  }
  const inputTokens = Math.max(usage?.inputTokens ?? 0, inputTokensUpperBound(prompt, tooling));
  const unseen = bound.hidden || !state.generationEnded;
  const seen = unseen ? bound.maxTokens : Math.min(bound.maxTokens, state.outputBound);
  const outputTokens = Math.max(usage?.outputTokens ?? 0, state.outputTokens, seen);
  return {
    inputTokens,
    outputTokens,
    costMicroUsd: costMicroUsd(model, inputTokens, outputTokens),
    usageSource: "estimated",
  };
}

/** A fresh meter state. */
export function newMeterState(): MeterState {
  return {
    outputTokens: 0,
    outputBound: 0,
    usage: null,
    usageFinal: false,
    finishReason: null,
    generationEnded: false,
    capped: false,
    firstTokenAt: null,
  };
}

/**
 * Counts output tokens as they pass and turns each delta into one `message_chunk` with the
 * running cost, and each piece of reasoning into one `reasoning_chunk`. A delta that would take
 * the cost over `capMicroUsd` is not forwarded: the state turns `capped`, and later text is
 * only counted in `outputBound`, never forwarded. A plain function, not a
 * TransformStream: on workerd each stream stage costs a construction and a promise hop per
 * chunk, and the session already holds the one loop that reads the upstream.
 */
export function createMeter(
  model: ModelInfo,
  prompt: readonly PromptMessage[],
  capMicroUsd: number,
  state: MeterState = newMeterState(),
  now = () => Date.now(),
  tooling?: Tooling,
): { state: MeterState; take(event: UpstreamEvent): Frame | null } {
  // The running cost counts the input at the bound the hold used, so the meter's stop at the
  // cap (the hold) leaves room for no more output than `max_tokens`, whatever the upstream does.
  const inputBound = inputTokensUpperBound(prompt, tooling);
  return {
    state,
    take(event) {
      if (event.type === "usage") {
        state.usage = { inputTokens: event.inputTokens, outputTokens: event.outputTokens };
        state.usageFinal = true;
        return null;
      }
      if (event.type === "finish") {
        state.generationEnded = true;
        if (!state.capped) state.finishReason = event.reason;
        return null;
      }
      // Whatever arrives was produced and is billed, forwarded or not.
      const text = event.type === "tool_call" ? (event.name ?? "") + event.arguments : event.text;
      state.outputBound += textTokensUpperBound(text);
      if (event.type === "tool_call") {
        // A function call's name and arguments are output like text, but a provider may write
        // them in a wordier form than the JSON it sends (Anthropic's invoke blocks): twice their
        // bytes, and the tokens that frame each call.
        state.outputBound += textTokensUpperBound(text);
        if (event.id !== undefined || event.name !== undefined) {
          state.outputBound += 2 * CHAT_OVERHEAD_TOKENS;
        }
      }
      state.usageFinal = false;
      if (state.capped) return null;
      const tokens = Math.max(1, estimateTokens(text));
      const cost = costMicroUsd(model, inputBound, state.outputTokens + tokens);
      if (cost > capMicroUsd) {
        state.capped = true;
        return null;
      }
      state.outputTokens += tokens;
      state.firstTokenAt ??= now();
      if (event.type === "reasoning") {
        return { event: "reasoning_chunk", data: { content: event.text } };
      }
      if (event.type === "tool_call") {
        const { type: _type, ...data } = event;
        return { event: "tool_call_chunk", data };
      }
      return {
        event: "message_chunk",
        data: { content: event.text, output_tokens: state.outputTokens, cost_usd: toUsd(cost) },
      };
    },
  };
}
