/**
 * @module The bounds money is recorded by never fall below the real count, checked against o200k
 * (gpt-tokenizer, a dev dependency only) on English, code, JSON, CJK, emoji, astral, other
 * scripts and whitespace built to fool an estimator; the display estimate stays close for prose
 * but is shown to be no bound (so nothing records money from it).
 */
import { encode } from "gpt-tokenizer/encoding/o200k_base";
import { describe, expect, it } from "vitest";
import {
  CHAT_OVERHEAD_TOKENS,
  estimateTokens,
  inputTokensUpperBound,
  textTokensUpperBound,
  utf8Length,
} from "../../src/stream/cost";

const CORPUS: Record<string, string> = {
  english: `The quick brown fox jumps over the lazy dog. In the beginning, the gateway streamed answers token by token, and every figure it recorded was meant to be honest: what the model read, what it wrote, and what it cost. When the upstream sends no usage, the gateway has to estimate, and an estimate that is too low bills the operator for work nobody paid for. Internationalization, misunderstanding, and counterproductive are long words; "quotes", (parentheses), semi-colons; and em-dashes — all appear in ordinary prose. Dr. Smith's 3rd edition (2019) cost $42.50, about 15% more than the 2nd.`,
  code: `export async function verifyTurnstile(turnstile, token, hostname) {
  if (!token) return { ok: false, reason: "missing" };
  const form = new URLSearchParams({ secret: turnstile.secretKey, response: token });
  for (let i = 0; i < 10; i++) console.log(\`\${i}: \${JSON.stringify(form)}\`);
  return res.status === 200 ? await res.json() : null; // TODO(xyz): handle 429
}
def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)
SELECT id, created_at FROM ledger WHERE user_id = $1 AND cost_micro_usd > 1000 ORDER BY 2 DESC;
<div class="turn" data-state="done"><span>{{ value | json }}</span></div>
const HMAC_KEY_BYTES = 0x20; let _privateVar$ = a?.b ?? c!; x >>>= 3; y **= 2;`,
  json: `{"id":"chatcmpl-9xYz","object":"chat.completion.chunk","created":1733043600,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"usage":{"prompt_tokens":12,"completion_tokens":34}}`,
  random: `sk-proj-4f9Qx7LmZ2vB8nR3tK6wY1pJ0hG5dS 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0 xqzvbnmplk QWERTYUIOP zZzZzZ aAbBcCdD 0123456789 3.14159265358979 https://example.com/a/b?c=d&e=f#g`,
  punctuation: `!!! ??? ... --- *** ### @@@ $$$ %%% ^^^ &&& ((( ))) [[[ ]]] {{{ }}} ||| \\\\ /// ~~~ \`\`\` ;;; ::: ,,, <<< >>> === +++ ___ '''\n\n\n\t\t\t    indented\n  -  a | b | c |\n|---|---|---|`,
  cjk: `你好世界，今天天气很好。我们来讨论一下这个网关的计费问题。日本語のテキストも含まれています。한국어 문장도 있습니다. 龘靐齉爩鱻麤 丂丄丅丆 㐀㐁㐂 䶵`,
  emoji: `😀👍🏽👨‍👩‍👧‍👦🇺🇸🏳️‍🌈 ❤️ ✨🔥💯 🤖 ☃ ⚡️ 🧑🏿‍💻`,
  astral:
    `\u{20000}\u{20001}\u{2A6D6}\u{1D11E}\u{1F600}\u{10FFFD}\u{E0041}\u{1F9D1}` +
    "\u{20000}".repeat(50),
  whitespace: `a${" \t".repeat(300)}\v\f\v\f${"\n \r\n".repeat(100)}${"\u2003\u00a0\u3000\u200b".repeat(50)}`,
  mixed: `Price: ¥1,200 (≈ $8.50) — café naïve résumé Ångström Øresund straße ĳ œ ﬁ Σίσυφος Ελληνικά Русский текст עברית العربية हिन्दी ภาษาไทย`,
};

/** The o200k pre-tokenizer's pieces of `text`, as a model streams them (one delta per few). */
const PIECES =
  /[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

describe("the upper bounds against o200k", () => {
  for (const [name, text] of Object.entries(CORPUS)) {
    it(`are never lower for the ${name} sample, whole, line by line and piece by piece`, () => {
      expect(textTokensUpperBound(text)).toBeGreaterThanOrEqual(encode(text).length);
      for (const line of text.split("\n"))
        expect(textTokensUpperBound(line)).toBeGreaterThanOrEqual(encode(line).length);
      for (const [piece] of text.matchAll(PIECES))
        expect(textTokensUpperBound(piece)).toBeGreaterThanOrEqual(encode(piece).length);
      const prompt = [{ role: "user" as const, content: text }];
      expect(inputTokensUpperBound(prompt)).toBeGreaterThanOrEqual(
        encode(text).length + CHAT_OVERHEAD_TOKENS,
      );
    });
  }

  it("count UTF-8 exactly as TextEncoder does, lone surrogates included", () => {
    for (const text of [
      ...Object.values(CORPUS),
      "",
      "a",
      "\u{1F600}",
      "\ud800",
      "x\udc00y\ud83d",
    ]) {
      expect(utf8Length(text)).toBe(new TextEncoder().encode(text).byteLength);
    }
  });
});

describe("the display estimate", () => {
  it("counts a whitespace run a token a character, so the cap cannot be slipped past with it", () => {
    for (const text of [`a${" \t".repeat(2000)}`, "\v\f".repeat(500), "\n \r\n".repeat(300)]) {
      expect(estimateTokens(text)).toBeGreaterThanOrEqual(encode(text).length);
    }
  });

  it("overestimates English prose by at most a third, and never exceeds the bytes", () => {
    const text = CORPUS.english ?? "";
    expect(estimateTokens(text)).toBeGreaterThanOrEqual(encode(text).length);
    expect(estimateTokens(text)).toBeLessThanOrEqual(Math.ceil(encode(text).length * 1.34));
    for (const sample of Object.values(CORPUS))
      expect(estimateTokens(sample)).toBeLessThanOrEqual(utf8Length(sample));
    expect(estimateTokens("")).toBe(0);
  });
});
