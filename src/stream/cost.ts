/**
 * @module Token and cost arithmetic. Prices are USD per million tokens, which is exactly
 * micro-dollars per token, so costs are kept as integer micro-dollars (µUSD) and never drift.
 */
import type { ModelInfo } from "./models";

/** Tokens the chat format adds around one user message (role markers, priming). */
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

function utf8Bytes(text: string): number {
  let bytes = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    bytes += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return bytes;
}

/** Tokens one ASCII piece may take: a plain word up to 6 characters a token, anything else far fewer. */
function asciiPieceTokens(piece: string): number {
  const letters = piece.replace(/[^A-Za-z]/g, "");
  if (letters) {
    // A leading punctuation mark ("_usd", "(xyz") is a token of its own more often than not.
    const lead = /^[^A-Za-z ]/.test(piece) ? 1 : 0;
    const perToken = PLAIN_WORD.test(letters) ? 6 : 1.5;
    return lead + Math.ceil((piece.length - lead) / perToken);
  }
  if (/^(\s+|\d+)$/.test(piece)) return 1;
  const mark = piece.trimEnd();
  return Math.ceil(mark.trim().length / 1.5) + (mark.length < piece.length ? 1 : 0);
}

/**
 * Estimated tokens of `text` when the upstream reports none; meant never to be lower than a
 * byte-level BPE's count (checked against o200k in test/hardening/estimator.test.ts). Non-ASCII
 * text counts as its UTF-8 bytes, a hard bound (every token holds at least one byte), since a
 * rare CJK or astral character takes up to one token per byte; ASCII pieces count by the rule
 * of asciiPieceTokens, about a quarter over o200k for English prose. Never above the bytes.
 */
export function estimateTokens(text: string): number {
  let tokens = 0;
  let covered = 0;
  for (const [piece] of text.matchAll(PIECE)) {
    covered += piece.length;
    tokens += NON_ASCII.test(piece) ? utf8Bytes(piece) : asciiPieceTokens(piece);
  }
  // Every character falls in some piece; should one ever not, it counts as its bytes.
  return covered === text.length ? tokens : Math.max(tokens, utf8Bytes(text));
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

/** The most output tokens that keep the stream under `capUsd`, even with the worst-case input. */
export function maxOutputTokens(model: ModelInfo, message: string, capUsd: number): number {
  const budget = Math.floor(capUsd * 1e6) - costMicroUsd(model, inputTokensUpperBound(message), 0);
  return Math.max(0, Math.min(16_384, Math.floor(budget / model.outputUsdPerMillion)));
}
