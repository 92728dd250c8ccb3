/**
 * @module Token and cost arithmetic. Prices are USD per million tokens, which is exactly
 * micro-dollars per token, so costs are kept as integer micro-dollars (µUSD) and never drift.
 */
import type { HoldPrice } from "../limits/budget";
import type { ModelInfo } from "./models";
import type { PromptMessage } from "./prompt";

/**
 * Tokens the chat format adds around each message (role markers, separators; the first also
 * covers the reply's priming). OpenAI's format adds 3 per message plus 3 for the reply, Llama-style
 * templates about 5 per message: 8 bounds them all.
 */
export const CHAT_OVERHEAD_TOKENS = 8;

/** Estimated tokens of `text` when the upstream reports none: about 4 characters a token. */
export function estimateTokens(text: string): number {
  return text.length === 0 ? 0 : Math.ceil(text.length / 4);
}

/** Estimated tokens of the whole prompt: every message and its framing. */
export function estimateInputTokens(prompt: readonly PromptMessage[]): number {
  let tokens = 0;
  for (const m of prompt) tokens += estimateTokens(m.content) + CHAT_OVERHEAD_TOKENS;
  return tokens;
}

const utf8 = new TextEncoder();

/**
 * The prompt's worst-case input tokens, a bound no tokenizer exceeds: every token covers at
 * least one UTF-8 byte, plus each message's framing. `max_tokens`, the cap and the budget hold
 * are derived from it, so they hold whatever the upstream's tokenizer does.
 */
export function inputTokensUpperBound(prompt: readonly PromptMessage[]): number {
  let tokens = 0;
  for (const m of prompt) tokens += utf8.encode(m.content).byteLength + CHAT_OVERHEAD_TOKENS;
  return tokens;
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

/** USD (as a client sends it, up to 12 decimals) to whole µUSD, rounded down. */
export function usdToMicro(usd: number): number {
  // 0.29 * 1e6 is 289999.99999999994 in floats: round to pico-dollars first, then floor.
  return Math.floor(Math.round(usd * 1e12) / 1e6);
}

/** No stream asks for more output than this, whatever its cap could pay for. */
export const MAX_OUTPUT_TOKENS = 16_384;

/**
 * The most output tokens that keep a stream of `prompt` under `capMicroUsd`, even with the
 * worst-case input; `clientMax` (a client's own `max_tokens`) can only lower it.
 */
export function maxOutputTokens(
  model: ModelInfo,
  prompt: readonly PromptMessage[],
  capMicroUsd: number,
  clientMax: number | null = null,
): number {
  const budget = capMicroUsd - costMicroUsd(model, inputTokensUpperBound(prompt), 0);
  // In whole pico-dollars, so a float quotient can never round one unaffordable token in.
  const affordable = Math.floor((budget * 1e6) / picoUsdPerToken(model.outputUsdPerMillion));
  return Math.max(0, Math.min(MAX_OUTPUT_TOKENS, clientMax ?? MAX_OUTPUT_TOKENS, affordable));
}

/**
 * What the budgets need to hold a stream's worst case: its cap, its prompt's worst-case input
 * cost, and one output token's price, in integers (µUSD, pico-USD). `decideHold` derives the
 * same `max_tokens` from it as `maxOutputTokens` does from the cap alone.
 */
export function holdPrice(
  model: ModelInfo,
  prompt: readonly PromptMessage[],
  capMicroUsd: number,
  clientMax: number | null = null,
): HoldPrice {
  return {
    capMicroUsd,
    inputMicroUsd: costMicroUsd(model, inputTokensUpperBound(prompt), 0),
    outputPicoUsd: picoUsdPerToken(model.outputUsdPerMillion),
    maxTokensCeiling: Math.min(MAX_OUTPUT_TOKENS, clientMax ?? MAX_OUTPUT_TOKENS),
  };
}
