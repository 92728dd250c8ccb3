/**
 * @module Token and cost arithmetic. Prices are USD per million tokens, which is exactly
 * micro-dollars per token, so costs are kept as integer micro-dollars (µUSD) and never drift.
 */
import type { HoldPrice } from "../limits/budget";
import type { ModelInfo } from "./models";
import type { PromptMessage, Tooling } from "./prompt";

/**
 * Tokens the chat format adds around each message (role markers, separators; the first also
 * covers the reply's priming). OpenAI's format adds 3 per message plus 3 for the reply, Llama-style
 * templates about 5 per message: 8 bounds them all.
 */
export const CHAT_OVERHEAD_TOKENS = 8;

/**
 * o200k's pre-tokenizer (without its contractions, which only split pieces further): no token
 * crosses these pieces, so a bound for each piece bounds the whole text.
 */
const PIECE =
  /[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;
const NON_ASCII = /\P{ASCII}/u;
/** A word BPE vocabularies know well: some vowel, some lower case, no run of 4 consonants. */
const PLAIN_WORD = /^(?=.*[aeiouAEIOU])(?=.*[a-z])(?!.*[^aeiouyAEIOUY]{4})/;

/** Tokens one ASCII piece may take: a plain word up to 6 characters a token, anything else far fewer. */
function asciiPieceTokens(piece: string): number {
  const letters = piece.replace(/[^A-Za-z]/g, "");
  if (letters) {
    // A leading punctuation mark ("_usd", "(xyz") is a token of its own more often than not.
    const lead = /^[^A-Za-z ]/.test(piece) ? 1 : 0;
    const perToken = PLAIN_WORD.test(letters) ? 6 : 1.5;
    return lead + Math.ceil((piece.length - lead) / perToken);
  }
  // A whitespace run counts a token a character: o200k splits runs of mixed whitespace finely,
  // and the meter's stop at the cap must not be slipped past with whitespace.
  if (/^\s+$/.test(piece)) return piece.length;
  if (/^\d+$/.test(piece)) return 1;
  const mark = piece.trimEnd();
  return Math.ceil(mark.trim().length / 1.5) + (mark.length < piece.length ? 1 : 0);
}

/**
 * A display estimate of the tokens of `text`: the running `output_tokens` of `message_chunk`
 * (and its share of the running `cost_usd`), and of the meter's stop at the cost cap. Close to a byte-level BPE's count for
 * prose and code, but it CAN be lower (a run of mixed whitespace is one piece here and many
 * tokens to o200k), so money is never recorded from it: without the provider's final usage the
 * record takes the upper bounds below (`inputTokensUpperBound`, `textTokensUpperBound`).
 */
export function estimateTokens(text: string): number {
  let tokens = 0;
  let covered = 0;
  for (const [piece] of text.matchAll(PIECE)) {
    covered += piece.length;
    tokens += NON_ASCII.test(piece) ? utf8Length(piece) : asciiPieceTokens(piece);
  }
  // Every character falls in some piece; should one ever not, it counts as its bytes.
  return covered === text.length ? tokens : Math.max(tokens, utf8Length(text));
}

/**
 * The UTF-8 length of `text`, counted without allocating (a lone surrogate counts 3, as
 * TextEncoder encodes it as U+FFFD).
 */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c >= 0xd800 && c <= 0xdbff && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2; // a pair: 4 bytes for 2 units
      i++;
    } else bytes += 2;
  }
  return bytes;
}

/**
 * The most tokens any byte-level tokenizer can make of `text`: every token carries at least one
 * UTF-8 byte.
 */
export const textTokensUpperBound = utf8Length;

/**
 * Framing a provider adds around tool definitions: OpenAI renders them as a TypeScript-like
 * namespace (a preamble, then `type name = (_: {...}) => any;` per function, each shorter than
 * its JSON), Anthropic adds a tool-use system prompt of at most about 350 tokens. 512 for the
 * section and 32 per tool bound both.
 */
export const TOOLS_OVERHEAD_TOKENS = 512;
export const PER_TOOL_OVERHEAD_TOKENS = 32;

/**
 * The most tokens the request's tooling can be billed as: the UTF-8 bytes of the JSON of its
 * tools, tool choice and response format (a schema is tokenized too), plus their framing.
 */
export function toolingTokensUpperBound(tooling: Tooling | undefined): number {
  if (!tooling) return 0;
  const { tools, toolChoice, responseFormat } = tooling;
  let tokens = 0;
  if (tools && tools.length > 0) {
    tokens += utf8Length(JSON.stringify(tools));
    tokens += TOOLS_OVERHEAD_TOKENS + PER_TOOL_OVERHEAD_TOKENS * tools.length;
  }
  if (toolChoice !== undefined) tokens += utf8Length(JSON.stringify(toolChoice));
  if (responseFormat !== undefined) {
    tokens += utf8Length(JSON.stringify(responseFormat)) + TOOLS_OVERHEAD_TOKENS;
  }
  return tokens;
}

/**
 * One message's worst-case input tokens: its text's UTF-8 bytes, the JSON bytes of its tool
 * calls (names and arguments) and of the call id it answers, its images' bound, and framing
 * for it and for each part and call.
 */
function messageTokensUpperBound(m: PromptMessage): number {
  let tokens = utf8Length(m.content) + CHAT_OVERHEAD_TOKENS;
  if (m.parts) tokens += m.parts.length * CHAT_OVERHEAD_TOKENS;
  if (m.imageTokens) tokens += m.imageTokens;
  if (m.toolCalls) {
    tokens += utf8Length(JSON.stringify(m.toolCalls));
    tokens += m.toolCalls.length * CHAT_OVERHEAD_TOKENS;
  }
  if (m.toolCallId) tokens += utf8Length(m.toolCallId);
  return tokens;
}

/**
 * The prompt's worst-case input tokens, a bound no tokenizer exceeds: every token covers at
 * least one UTF-8 byte, plus each message's framing, plus the tooling (tool definitions, tool
 * choice, response format) and each image at the most its model can charge. `max_tokens`, the
 * cap, the budget hold and the record of a stream without the provider's usage are derived
 * from it, so they hold whatever the upstream's tokenizer does.
 */
export function inputTokensUpperBound(prompt: readonly PromptMessage[], tooling?: Tooling): number {
  let tokens = toolingTokensUpperBound(tooling);
  for (const m of prompt) tokens += messageTokensUpperBound(m);
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
  tooling?: Tooling,
): number {
  const budget = capMicroUsd - costMicroUsd(model, inputTokensUpperBound(prompt, tooling), 0);
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
  tooling?: Tooling,
): HoldPrice {
  return {
    capMicroUsd,
    inputMicroUsd: costMicroUsd(model, inputTokensUpperBound(prompt, tooling), 0),
    outputPicoUsd: picoUsdPerToken(model.outputUsdPerMillion),
    maxTokensCeiling: Math.min(MAX_OUTPUT_TOKENS, clientMax ?? MAX_OUTPUT_TOKENS),
  };
}
