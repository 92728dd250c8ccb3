/**
 * @module Routes across providers end to end, against real loopback servers: a fake Anthropic
 * replaying recorded streams, two OpenAI-compatible fakes (`a.`/`b.` directives) for fallback,
 * an address where nothing listens, and the money of a route in both stores.
 */
import { decodeJwt } from "jose";
import { describe, expect, inject, it } from "vitest";
import type { Bindings } from "../../../src/env";
import {
  costMicroUsd,
  inputTokensUpperBound,
  maxOutputTokens,
  usdToMicro,
} from "../../../src/stream/cost";
import type { DoneData } from "../../../src/stream/frames";
import { parseRegistry } from "../../../src/stream/registry";
import { json } from "../../helpers/app";
import { anonCaller, ledgerOf, postAs, usageOf, type Who } from "../../helpers/gate";
import { readEvents, type SseEvent } from "../../helpers/sse";
import { type StoreKind, storeEnv } from "../../helpers/stores";
import type { AnthropicRecord } from "../../support/anthropic-record";
import type { UpstreamRecord } from "../../support/upstream-record";

const A = inject("upstreamAUrl");
const B = inject("upstreamBUrl");
const ANTHROPIC = inject("anthropicUrl");
const DEAD = inject("deadUpstreamUrl");

/** Secrets the providers name; they must never show up in an answer. */
const KEYS = { KEY_A: "sk-secret-a", KEY_B: "sk-secret-b", KEY_C: "sk-ant-secret" };

const PROVIDERS = {
  a: { type: "openai", base_url: `${A}/v1`, api_keys: ["KEY_A"] },
  b: { type: "openai", base_url: `${B}/v1`, api_keys: ["KEY_B"] },
  claude: { type: "anthropic", base_url: `${ANTHROPIC}/v1`, api_keys: ["KEY_C"] },
  dead: { type: "openai", base_url: DEAD, api_keys: ["KEY_A"] },
};

const MODELS = {
  "a-then-b": {
    route: [
      { provider: "a", model: "model-a" },
      { provider: "b", model: "model-b" },
    ],
    input_usd_per_million: 1,
    output_usd_per_million: 2,
  },
  // The hold covers the dearer target; the cheaper one gets more max_tokens for the same cap.
  "dear-then-cheap": {
    route: [
      { provider: "a", model: "dear", input_usd_per_million: 3, output_usd_per_million: 15 },
      { provider: "b", model: "cheap", input_usd_per_million: 0.5, output_usd_per_million: 1.5 },
    ],
  },
  claude: {
    route: [
      { provider: "claude", model: "claude-test" },
      { provider: "b", model: "model-b" },
    ],
    input_usd_per_million: 3,
    output_usd_per_million: 15,
  },
  "claude-thinks": {
    route: [{ provider: "claude", model: "claude-test" }],
    input_usd_per_million: 3,
    output_usd_per_million: 15,
    reasoning: true,
  },
  "dead-then-b": {
    route: [
      { provider: "dead", model: "x" },
      { provider: "b", model: "model-b" },
    ],
    input_usd_per_million: 1,
    output_usd_per_million: 2,
  },
};

/** An env with the route registry; a new object is a new isolate's config (fresh breakers). */
function routeEnv(kind: StoreKind = "durable_object", vars: Record<string, string> = {}): Bindings {
  return {
    ...storeEnv(kind, {
      PROVIDERS: JSON.stringify(PROVIDERS),
      MODELS: JSON.stringify(MODELS),
      ANON_MODELS: Object.keys(MODELS).join(","),
      SYSTEM_PROMPT: "Be brief.",
      UPSTREAM_CONNECT_TIMEOUT_MS: "400",
      ...vars,
    }),
    ...KEYS,
  } as Bindings;
}

async function seenBy<T>(base: string, id: string): Promise<T | null> {
  const res = await fetch(`${base}/__test/requests/${id}`);
  if (res.status === 404) {
    await res.body?.cancel();
    return null;
  }
  return (await res.json()) as T;
}

const doneOf = (events: SseEvent[]) =>
  events.find((e) => e.event === "done")?.data as unknown as DoneData;
const text = (events: SseEvent[], kind = "message_chunk") =>
  events
    .filter((e) => e.event === kind)
    .map((e) => e.data.content)
    .join("");

describe("anthropic targets, replaying recorded Anthropic streams", () => {
  it("streams text deltas with usage from message_start and message_delta", async () => {
    const env = routeEnv();
    const who = await anonCaller();
    const id = crypto.randomUUID();
    const { status, events } = await askIn(env, who, "claude", `hi [[anthropic id=${id}]]`);
    expect(status).toBe(200);
    expect(text(events)).toBe("Hello there!");
    expect(doneOf(events)).toMatchObject({
      model: "claude",
      provider: "claude",
      upstream_model: "claude-test",
      input_tokens: 11,
      output_tokens: 6,
      finish_reason: "stop",
      usage_source: "upstream",
      cost_usd: (11 * 3 + 6 * 15) / 1e6,
    });
    const seen = await seenBy<AnthropicRecord>(ANTHROPIC, id);
    expect(seen?.apiKey).toBe(KEYS.KEY_C);
    expect(seen?.version).toBe("2023-06-01");
    expect(seen?.body).toMatchObject({ model: "claude-test", stream: true, system: "Be brief." });
    expect(seen?.body.messages).toEqual([{ role: "user", content: `hi [[anthropic id=${id}]]` }]);
    expect(seen?.body.max_tokens).toBeGreaterThan(0);
  });

  it("sends thinking deltas as reasoning_chunk, never as the answer", async () => {
    const env = routeEnv();
    const id = crypto.randomUUID();
    const { events } = await askIn(
      env,
      await anonCaller(),
      "claude-thinks",
      `hey [[anthropic id=${id} rec=thinking]]`,
      0.5,
    );
    expect(text(events, "reasoning_chunk")).toMatch(/^The user has simply said "hey"/);
    expect(text(events)).toMatch(/^Hello! I'm Assistant/);
    expect(doneOf(events)).toMatchObject({ input_tokens: 778, output_tokens: 104 });
    const seen = await seenBy<AnthropicRecord>(ANTHROPIC, id);
    const thinking = seen?.body.thinking as { type: string; budget_tokens: number };
    expect(thinking.type).toBe("enabled");
    expect(thinking.budget_tokens).toBeLessThan(seen?.body.max_tokens as number);
  });

  it("maps stop_reason max_tokens to length and counts cache reads as input", async () => {
    const { events } = await askIn(
      routeEnv(),
      await anonCaller(),
      "claude",
      "x [[anthropic rec=max-tokens]]",
    );
    expect(doneOf(events)).toMatchObject({
      finish_reason: "length",
      input_tokens: 450,
      output_tokens: 124,
    });
  });

  it("ends with upstream_error on an error event mid-stream, without falling back", async () => {
    const id = crypto.randomUUID();
    const { events } = await askIn(
      routeEnv(),
      await anonCaller(),
      "claude",
      `x [[anthropic rec=error b.id=${id}]]`,
    );
    expect(text(events)).toBe("Hello there");
    expect(events.at(-1)).toMatchObject({ event: "error", data: { error_code: "upstream_error" } });
    expect(await seenBy(B, id)).toBeNull();
  });

  it("falls back to the OpenAI target when Anthropic answers 529 overloaded", async () => {
    const { events } = await askIn(
      routeEnv(),
      await anonCaller(),
      "claude",
      "x [[anthropic status=529]] [[fake tokens=2]]",
    );
    expect(doneOf(events)).toMatchObject({
      provider: "b",
      upstream_model: "model-b",
      output_tokens: 2,
    });
  });
});

/** Streams in `env` (whose store the caller's usage is read from). */
async function askIn(env: Bindings, who: Who, model: string, message: string, cap = 0.05) {
  const { res, settled } = await postAs(
    who,
    "/api/v1/stream",
    { model, message, cost_cap_usd: cap },
    env,
  );
  const status = res.status;
  const events: SseEvent[] = status === 200 ? await readEvents(res) : [];
  const error = status === 200 ? null : await json<{ error_code: string; detail: string }>(res);
  await settled();
  return { status, events, error };
}

describe("fallback before the first token", () => {
  for (const status of [408, 409, 429, 500, 503, 401, 403]) {
    it(`hands a ${status} from the first target to the second`, async () => {
      const id = crypto.randomUUID();
      const { events } = await askIn(
        routeEnv(),
        await anonCaller(),
        "a-then-b",
        `x [[fake id=${id} a.status=${status} tokens=3]]`,
      );
      expect(doneOf(events)).toMatchObject({
        provider: "b",
        upstream_model: "model-b",
        output_tokens: 3,
      });
      expect((await seenBy<UpstreamRecord>(A, id))?.authorization).toBe(`Bearer ${KEYS.KEY_A}`);
      expect((await seenBy<UpstreamRecord>(B, id))?.authorization).toBe(`Bearer ${KEYS.KEY_B}`);
    });
  }

  it("hands a refused connection to the next target", async () => {
    const { events } = await askIn(
      routeEnv(),
      await anonCaller(),
      "dead-then-b",
      "x [[fake tokens=2]]",
    );
    expect(doneOf(events)).toMatchObject({ provider: "b", output_tokens: 2 });
  });

  it("gives up on a target silent past UPSTREAM_CONNECT_TIMEOUT_MS and cancels it", async () => {
    // The same silence of target a (1.5 s before its status and headers) under two timeouts:
    // the configured one alone decides whether a is waited for.
    const silent = (id: string) => `x [[fake id=${id} a.headerDelay=1500 tokens=2]]`;
    const waited = crypto.randomUUID();
    const patient = routeEnv("durable_object", { UPSTREAM_CONNECT_TIMEOUT_MS: "5000" });
    const kept = await askIn(patient, await anonCaller(), "a-then-b", silent(waited));
    expect(doneOf(kept.events)).toMatchObject({ provider: "a", output_tokens: 2 });
    expect(await seenBy(B, waited)).toBeNull();

    const id = crypto.randomUUID();
    const { events } = await askIn(routeEnv(), await anonCaller(), "a-then-b", silent(id));
    expect(doneOf(events)).toMatchObject({ provider: "b", output_tokens: 2 });
    // a was cancelled while still silent (it never sent a token), and b was asked once.
    const a = await seenBy<UpstreamRecord>(A, id);
    expect(a?.clientAborted).toBe(true);
    expect(a?.tokensSent).toBe(0);
    expect(await seenBy<UpstreamRecord>(B, id)).toMatchObject({ finished: true, tokensSent: 2 });
  });

  it("ends a 400 with 502 upstream_error at once: the next target is never asked", async () => {
    const env = routeEnv();
    const who = await anonCaller();
    const id = crypto.randomUUID();
    const { status, error } = await askIn(env, who, "a-then-b", `x [[fake id=${id} a.status=400]]`);
    expect(status).toBe(502);
    expect(error?.error_code).toBe("upstream_error");
    expect(await seenBy(B, id)).toBeNull();
  });

  it("does not fall back after the first token: a cut ends the stream", async () => {
    const id = crypto.randomUUID();
    const { events } = await askIn(
      routeEnv(),
      await anonCaller(),
      "a-then-b",
      `x [[fake id=${id} a.tokens=3 a.cut=1 a.linger=30]]`,
    );
    expect(text(events)).toBe("tok");
    expect(events.at(-1)?.event).toBe("error");
    expect(await seenBy(B, id)).toBeNull();
  });

  it("never shows a key or an upstream's words in an answer", async () => {
    const { error } = await askIn(
      routeEnv(),
      await anonCaller(),
      "a-then-b",
      "x [[fake a.status=500 b.status=500]]",
    );
    const body = JSON.stringify(error);
    for (const leak of [...Object.values(KEYS), "sk-live-123", "internals"]) {
      expect(body).not.toContain(leak);
    }
  });
});

describe("the ledger of a route", () => {
  it("names the answering target's provider and upstream model; model stays the client's id", async () => {
    const who = await anonCaller();
    const { events } = await askIn(routeEnv(), who, "a-then-b", "x [[fake a.status=500 tokens=2]]");
    const done = doneOf(events);
    const [record] = await ledgerOf(`anonymous:${decodeJwt(who.token).sub}`);
    expect(record).toMatchObject({
      model: "a-then-b",
      provider: "b",
      upstreamModel: "model-b",
      costMicroUsd: usdToMicro(done.cost_usd),
    });
    for (const key of Object.values(KEYS)) expect(JSON.stringify(record)).not.toContain(key);
  });
});

describe.each<StoreKind>(["durable_object", "upstash"])(
  "a route's money in the %s store",
  (kind) => {
    it("answers 502 when every target failed, gives the quota back and spends nothing", async () => {
      const env = routeEnv(kind);
      const who = await anonCaller();
      const before = await usageOf(who, env);
      const { status, error } = await askIn(
        env,
        who,
        "a-then-b",
        "x [[fake a.status=500 b.status=503]]",
      );
      expect(status).toBe(502);
      expect(error?.error_code).toBe("upstream_error");
      const after = await usageOf(who, env);
      expect(after.quota?.hourly.remaining).toBe(before.quota?.hourly.remaining);
      expect(after.quota?.total.remaining).toBe(before.quota?.total.remaining);
      expect(after.spend.total_usd).toBe(0);
    });

    it("answers 503 upstream_busy when the last target's failure was a 429", async () => {
      const env = routeEnv(kind);
      const who = await anonCaller();
      const { status, error } = await askIn(
        env,
        who,
        "a-then-b",
        "x [[fake a.status=500 b.status=429]]",
      );
      expect(status).toBe(503);
      expect(error?.error_code).toBe("upstream_busy");
    });

    it("gives the cheaper target more max_tokens for the same cap, and bills at its prices", async () => {
      const env = routeEnv(kind);
      const who = await anonCaller();
      const id = crypto.randomUUID();
      const cap = 0.002;
      const message = `x [[fake id=${id} a.status=503 tokens=4]]`;
      const { events } = await askIn(env, who, "dear-then-cheap", message, cap);
      const dear = await seenBy<UpstreamRecord>(A, id);
      const cheap = await seenBy<UpstreamRecord>(B, id);
      const registry = parseRegistry(env as unknown as Record<string, unknown>, false);
      const [dearTarget, cheapTarget] = registry.models.get("dear-then-cheap")?.route ?? [];
      if (!dearTarget || !cheapTarget || !dear?.maxTokens) throw new Error("no route or record");
      const prompt = [
        { role: "system" as const, content: "Be brief." },
        { role: "user" as const, content: message },
      ];
      expect(dear?.maxTokens).toBe(maxOutputTokens(dearTarget.model, prompt, usdToMicro(cap)));
      // The hold is what the dear target's max_tokens costs at most, a little under the cap; the
      // cheap target's max_tokens is what that hold pays for at its own prices.
      const hold = costMicroUsd(dearTarget.model, inputTokensUpperBound(prompt), dear.maxTokens);
      expect(hold).toBeLessThanOrEqual(usdToMicro(cap));
      expect(cheap?.maxTokens).toBe(maxOutputTokens(cheapTarget.model, prompt, hold));
      expect(cheap?.maxTokens as number).toBeGreaterThan(5 * (dear?.maxTokens as number));
      const done = doneOf(events);
      expect(done).toMatchObject({ provider: "b", upstream_model: "cheap", output_tokens: 4 });
      const expected = Math.ceil(done.input_tokens * 0.5 + 4 * 1.5);
      expect(usdToMicro(done.cost_usd)).toBe(expected);
      // The record (and so the budget) is the answering target's cost, not the hold.
      const u = await usageOf(who, env);
      expect(usdToMicro(u.spend.total_usd)).toBe(expected);
    });
  },
);
