/**
 * @module Money without the provider's final usage is an upper bound, never an estimate that can
 * be lower: judged by the provider's own tokenizer (o200k, gpt-tokenizer), on both stores and
 * both surfaces, with prompts and model output built to fool an estimator.
 */
import { encode, encodeChat } from "gpt-tokenizer/model/gpt-4o";
import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";
import type { Bindings } from "../../src/env";
import { costMicroUsd } from "../../src/stream/cost";
import { MODELS } from "../../src/stream/models";
import { call } from "../helpers/app";
import { anonCaller, fakeMessage, upstreamRecord, usageOf, type Who } from "../helpers/gate";
import { waitForRows } from "../helpers/ledger";
import { openEvents } from "../helpers/sse";
import { type StoreKind, storeEnv } from "../helpers/stores";
import { bearer } from "../helpers/tokens";

const MODEL = MODELS["gpt-4o-mini"];

/** Prompts whose o200k count is far above what a whitespace- or word-based estimate says. */
const ADVERSARIAL: Record<string, string> = {
  "space-tab runs": `a${" \t".repeat(2000)}`,
  "vertical tabs and form feeds": "\v\f\v ".repeat(1000),
  "newlines and carriage returns": "\n \r\n\t".repeat(900),
  "unicode spaces": "\u2003\u00a0\u3000\u2009\u200b\u2028".repeat(600),
  emoji: "👨‍👩‍👧‍👦🏳️‍🌈🧑🏿‍💻🇺🇸".repeat(120),
  CJK: "龘靐齉爩鱻麤丂丄丅㐀㐁䶵".repeat(300),
  "every script": "Ελλ Рус עבר عرب हिन् ไทย 한국 ქარ አማ ᚠᛇ 𐌰𐌱 ".repeat(70),
};

/** Model output built the same way: one chunk of mixed whitespace is one piece, many tokens. */
const HOSTILE_OUTPUT = " \t\v".repeat(40);
const b64url = (s: string) =>
  btoa(String.fromCharCode(...new TextEncoder().encode(s)))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replaceAll("=", "");

/** The limits key of a token's principal. */
const keyOf = (who: Who) => `anonymous:${decodeJwt(who.token).sub}`;

/** What the provider bills for a one-message prompt: o200k over the chat format. */
const billedInput = (content: string) => encodeChat([{ role: "user", content }], "gpt-4o").length;

type Surface = "native" | "openai";

/**
 * Starts a stream of `message` on `surface`. Its `leave` is the client going away: the body
 * cancelled and the request's signal aborted, as workerd does when a connection drops.
 */
async function start(
  surface: Surface,
  who: Who,
  message: string,
  env: Bindings,
  cap?: number,
  model: string = MODEL.id,
) {
  const gone = new AbortController();
  const native = surface === "native";
  const body = native
    ? { message, model, ...(cap ? { cost_cap_usd: cap } : {}) }
    : {
        model,
        stream: true,
        messages: [{ role: "user", content: message }],
        ...(cap ? { cost_cap_usd: cap } : {}),
      };
  const called = await call(
    native ? "/api/v1/stream" : "/v1/chat/completions",
    {
      method: "POST",
      headers: { ...bearer(who.token), "Content-Type": "application/json" },
      body: JSON.stringify(body),
      ip: who.ip,
      signal: gone.signal,
    },
    env,
  );
  return { ...called, leave: () => gone.abort() };
}

/** Reads up to the first chunk of the answer (either wire format), then leaves. */
async function abortAfterFirstChunk(
  surface: Surface,
  { res, leave }: { res: Response; leave: () => void },
): Promise<void> {
  if (surface === "native") {
    const reader = openEvents(res);
    for (let e = await reader.next(); e && e.event !== "message_chunk"; e = await reader.next()) {}
    leave();
    await reader.cancel();
    return;
  }
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!/"content":/.test(text)) {
    const r = await reader.read();
    if (r.done) break;
    text += decoder.decode(r.value, { stream: true });
  }
  leave();
  await reader.cancel();
}

/** The caller's own budget as /api/v1/usage says it, in µUSD. */
async function ownBudgetSpent(who: Who, env: Bindings): Promise<number> {
  const { budget } = await usageOf(who, env);
  expect(budget).not.toBeNull();
  return Math.round((budget?.spent_usd ?? 0) * 1e6);
}

describe.each<StoreKind>(["durable_object", "upstash"])(
  "money without final usage (%s)",
  (kind) => {
    describe.each<Surface>(["native", "openai"])("on the %s surface", (surface) => {
      it.each(Object.entries(ADVERSARIAL))(
        "records at least o200k's count of a prompt of %s aborted after the first chunk",
        async (_, text) => {
          const who = await anonCaller();
          const env = storeEnv(kind);
          const { message } = fakeMessage(
            { tokens: 5, hang: 1, usage: 0, textb64: b64url(HOSTILE_OUTPUT) },
            text,
          );
          const started = await start(surface, who, message, env);
          expect(started.res.status).toBe(200);
          await abortAfterFirstChunk(surface, started);
          await started.settled();

          const [row] = await waitForRows(keyOf(who), 1);
          const input = billedInput(message);
          const output = encode(HOSTILE_OUTPUT).length;
          expect(row?.input_tokens).toBeGreaterThanOrEqual(input);
          expect(row?.output_tokens).toBeGreaterThanOrEqual(output);
          const billed = costMicroUsd(MODEL, input, output);
          expect(row?.cost_micro_usd).toBeGreaterThanOrEqual(billed);
          // The budget counts what the ledger does, so it, too, is at least what was billed.
          expect(await ownBudgetSpent(who, env)).toBeGreaterThanOrEqual(billed);
        },
      );

      it("never lets usage sent early lower what was metered after it", async () => {
        const who = await anonCaller();
        const env = storeEnv(kind);
        const { message } = fakeMessage({ tokens: 60, early: 1, cut: 40, linger: 50 });
        const { res, settled } = await start(surface, who, message, env);
        expect(res.status).toBe(200);
        await res.text();
        await settled();
        const [row] = await waitForRows(keyOf(who), 1);
        // 40 pieces arrived ("tok", " tok", ...) after a usage that said 0.
        expect(row?.output_tokens).toBeGreaterThanOrEqual(encode(`tok${" tok".repeat(39)}`).length);
        expect(row?.input_tokens).toBeGreaterThanOrEqual(billedInput(message));
      });

      it("lets no loop of aborted whitespace-heavy streams spend past the caller's budget", async () => {
        const limit = 6_000;
        const env = storeEnv(kind, {
          BUDGET_ANON_DAILY_USD: (limit / 1e6).toFixed(6),
          STORE_PREFIX: `ub${crypto.randomUUID().slice(0, 8)}`,
        });
        const who = await anonCaller();
        let billed = 0;
        let refused = false;
        for (let i = 0; i < 12 && !refused; i++) {
          const { message } = fakeMessage(
            { tokens: 5, hang: 1, usage: 0 },
            ADVERSARIAL["space-tab runs"],
          );
          const started = await start(surface, who, message, env, 0.002);
          if (started.res.status !== 200) {
            expect(started.res.status).toBe(429);
            await started.res.body?.cancel();
            refused = true;
            break;
          }
          await abortAfterFirstChunk(surface, started);
          await started.settled();
          billed += costMicroUsd(MODEL, billedInput(message), encode("tok").length);
        }
        expect(refused).toBe(true);
        // What the provider billed (o200k) never passes the budget, however the streams ended.
        expect(billed).toBeLessThanOrEqual(limit);
        expect(await ownBudgetSpent(who, env)).toBeLessThanOrEqual(limit);
      });
    });
  },
);

/** The wire formats' words for a terminal event: what a finished and a failed stream end with. */
const ENDS = {
  native: { done: "event: done", error: "event: error" },
  openai: { done: "data: [DONE]", error: '"error":' },
} as const;

describe.each<[StoreKind, Surface]>([
  ["durable_object", "native"],
  ["durable_object", "openai"],
  ["upstash", "native"],
  ["upstash", "openai"],
])("deadlines (%s, %s surface)", (kind, surface) => {
  it("never starts a stream whose upstream answers after the max duration, and bills its prompt's bound", async () => {
    const who = await anonCaller();
    const env = storeEnv(kind, { STREAM_MAX_DURATION_MS: "1000" });
    const { id, message } = fakeMessage({ headerDelay: 2500, tokens: 5 }, ADVERSARIAL.emoji);
    const { res, settled } = await start(surface, who, message, env);
    expect(res.status).toBe(502);
    expect(await res.text()).toContain("upstream_error");
    await settled();
    // The upstream was hung up on before it answered: it never streamed a token.
    let seen = await upstreamRecord(id);
    for (let i = 0; i < 60 && !seen?.clientAborted; i++) {
      await new Promise((r) => setTimeout(r, 50));
      seen = await upstreamRecord(id);
    }
    expect(seen).toMatchObject({ clientAborted: true, tokensSent: 0 });
    const [row] = await waitForRows(keyOf(who), 1);
    expect(row).toMatchObject({ finish_reason: "upstream_error" });
    expect(row?.input_tokens).toBeGreaterThanOrEqual(billedInput(message));
  });

  it("waits for a reasoning model's silent thinking past the idle timeout, and completes", async () => {
    const who = await anonCaller();
    const env = storeEnv(kind, { UPSTREAM_IDLE_TIMEOUT_MS: "200" });
    const { message } = fakeMessage({ firstDelay: 800, tokens: 3 });
    const { res, settled } = await start(surface, who, message, env, undefined, "o4-mini");
    const text = await res.text();
    await settled();
    expect(text).toContain(ENDS[surface].done);
    expect(text).not.toContain(ENDS[surface].error);
    const [row] = await waitForRows(keyOf(who), 1);
    expect(row).toMatchObject({ finish_reason: "stop", output_tokens: 3 });
  });

  it("gives up on a non-reasoning model silent past its first-token timeout", async () => {
    const who = await anonCaller();
    const env = storeEnv(kind, { UPSTREAM_FIRST_TOKEN_TIMEOUT_MS: "200" });
    const { message } = fakeMessage({ firstDelay: 1500, tokens: 3 });
    const { res, settled } = await start(surface, who, message, env);
    const text = await res.text();
    await settled();
    expect(text).toContain(ENDS[surface].error);
    const [row] = await waitForRows(keyOf(who), 1);
    expect(row).toMatchObject({ finish_reason: "upstream_error" });
    expect(row?.input_tokens).toBeGreaterThanOrEqual(billedInput(message));
  });

  it("bills a client that leaves during hidden reasoning at the bound of that reasoning", async () => {
    const who = await anonCaller();
    const env = storeEnv(kind);
    const { id, message } = fakeMessage({ firstDelay: 5000, tokens: 3 });
    const started = await start(surface, who, message, env, 0.01, "o4-mini");
    expect(started.res.status).toBe(200);
    const seen = await upstreamRecord(id);
    started.leave();
    await started.res.body?.cancel();
    await started.settled();
    const [row] = await waitForRows(keyOf(who), 1);
    // The provider may have thought up to max_completion_tokens: that is what is recorded.
    expect(seen?.maxCompletionTokens).toBeGreaterThan(0);
    expect(row?.output_tokens).toBeGreaterThanOrEqual(seen?.maxCompletionTokens ?? Infinity);
    expect(row?.cost_micro_usd).toBeLessThanOrEqual(10_000);
  });
});
