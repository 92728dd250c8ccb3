/**
 * @module Token and cost arithmetic. Prices are USD per million tokens, which is exactly
 * micro-dollars per token, so costs are kept as integer micro-dollars (µUSD) and never drift.
 */
import type { HoldPrice } from "../limits/budget";
import type { ModelInfo } from "./models";

/** Tokens the chat format adds around one user message (role markers, priming). */
export const CHAT_OVERHEAD_TOKENS = 8;

/** Estimated tokens of `text` when the upstream reports none: about 4 characters a token. */
export function estimateTokens(text: string): number {
  return text.length === 0 ? 0 : Math.ceil(text.length / 4);
}

/** Estimated prompt tokens of a one-message chat. */
export function estimateInputTokens(message: string): number {
  return estimateTokens(message) + CHAT_OVERHEAD_TOKENS;
}

/**
 * A bound no tokenizer exceeds: every token covers at least one UTF-8 byte. Used to derive
 * `max_tokens`, so the cap holds whatever the upstream's tokenizer does.
 */
export function inputTokensUpperBound(message: string): number {
  return new TextEncoder().encode(message).byteLength + CHAT_OVERHEAD_TOKENS;
}

/** A price in µUSD per token as whole pico-dollars: exact for prices with up to six decimals. */
function picoUsdPerToken(usdPerMillion: number): number {
  return Math.round(usdPerMillion * 1e6);
}

/** Cost in integral µUSD, rounded up. */
export function costMicroUsd(model: ModelInfo, inputTokens: number, outputTokens: number): number {
  // Summed as floats, 1 × 0.4 + 6 × 1.6 is 10.000000000000002 and would be billed as 11 µUSD.
  // Whole pico-dollars keep the sum exact (far below 2^53 for any stream), so only a real
  // fraction of a µUSD rounds up.
  const pico =
    inputTokens * picoUsdPerToken(model.inputUsdPerMillion) +
    outputTokens * picoUsdPerToken(model.outputUsdPerMillion);
  return Math.ceil(pico / 1e6);
}

/** µUSD to USD for the wire. */
export function toUsd(micro: number): number {
  return micro / 1e6;
}

/** The most output tokens any stream asks the upstream for. */
export const MAX_TOKENS_CEILING = 16_384;

/**
 * What the budgets need to hold a stream's worst case: its cap, its prompt's worst-case input
 * cost, and one output token's price. Integers throughout (µUSD, pico-USD).
 */
export function holdPrice(model: ModelInfo, message: string, capUsd: number): HoldPrice {
  return {
    capMicroUsd: Math.floor(capUsd * 1e6),
    inputMicroUsd: costMicroUsd(model, inputTokensUpperBound(message), 0),
    outputPicoUsd: picoUsdPerToken(model.outputUsdPerMillion),
    maxTokensCeiling: MAX_TOKENS_CEILING,
  };
}

/** The most output tokens that keep the stream under `capUsd`, even with the worst-case input. */
export function maxOutputTokens(model: ModelInfo, message: string, capUsd: number): number {
  const budget = Math.floor(capUsd * 1e6) - costMicroUsd(model, inputTokensUpperBound(message), 0);
  return Math.max(0, Math.min(MAX_TOKENS_CEILING, Math.floor(budget / model.outputUsdPerMillion)));
}
