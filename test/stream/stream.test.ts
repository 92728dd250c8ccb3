/**
 * @module GET|POST /api/v1/stream end to end in workerd against the fake upstream: frames, cost,
 * caps, upstream faults, disconnects, the ledger, heartbeats and the demo provider.
 */
import { env, exports } from "cloudflare:workers";
import { decodeJwt } from "jose";
import { describe, expect, inject, it } from "vitest";
import { parseConfig } from "../../src/config";
import type { Bindings } from "../../src/env";
import type { LedgerRecord } from "../../src/ledger/record";
import { writeLedger } from "../../src/ledger/write";
import type { LimitsStore } from "../../src/limits/durable-object";
import { storeFor } from "../../src/limits/select-store";
import { createLogger } from "../../src/observe/log";
import {
  inputTokensUpperBound,
  maxOutputTokens,
  textTokensUpperBound,
  usdToMicro,
} from "../../src/stream/cost";
import type { DoneData } from "../../src/stream/frames";
import { MODELS } from "../../src/stream/models";
import { demoAnswer } from "../../src/stream/providers/demo";
import { MAX_QUEUED_FRAMES } from "../../src/stream/session";
import { call, testEnv } from "../helpers/app";
import { fakeMessage, freshIp, upstreamRecord as recordOf } from "../helpers/gate";
import { openEvents, readEvents, type SseEvent } from "../helpers/sse";
import { anonToken, bearer, SECRET_KEY, supabaseClaims, supabaseHs256 } from "../helpers/tokens";
import type { UpstreamRecord } from "../support/upstream-record";

/** The fake's own address (without `/v1`), for its `/__test/requests/<id>` records. */
const UPSTREAM_BASE = inject("upstreamUrl").replace(/\/v1$/, "");

interface ChunkData {
  content: string;
  output_tokens: number;
  cost_usd: number;
}

interface ErrorData {
  error_code: string;
  detail: string;
  retry_after: number | null;
}

interface UsageBody {
  quota: { hourly: { remaining: number }; total: { remaining: number } } | null;
  limits: { user: { limit: number; remaining: number }; ip: { limit: number; remaining: number } };
  spend: { total_usd: number; today_usd: number; streams: number };
}

interface StreamOptions {
  token: string;
  message: string;
  model?: string;
  stream_id?: string;
  cost_cap_usd?: number;
  method?: "GET" | "POST";
  bindings?: Bindings;
  ip?: string;
  signal?: AbortSignal;
  accept?: string;
}

/** Calls the stream endpoint by GET (query) or POST (JSON). */
function startStream(o: StreamOptions) {
  const fields: Record<string, string | number> = { message: o.message };
  if (o.model !== undefined) fields.model = o.model;
  if (o.stream_id !== undefined) fields.stream_id = o.stream_id;
  if (o.cost_cap_usd !== undefined) fields.cost_cap_usd = o.cost_cap_usd;
  const headers: Record<string, string> = { ...bearer(o.token) };
  if (o.accept) headers.Accept = o.accept;
  const init: RequestInit & { ip?: string } = { headers, ip: o.ip ?? freshIp() };
  if (o.signal) init.signal = o.signal;
  if (o.method === "POST") {
    headers["Content-Type"] = "application/json";
    return call(
      "/api/v1/stream",
      { ...init, method: "POST", body: JSON.stringify(fields) },
      o.bindings ?? testEnv(),
    );
  }
  const query = new URLSearchParams(
    Object.entries(fields).map(([k, v]) => [k, String(v)] as [string, string]),
  );
  return call(`/api/v1/stream?${query}`, init, o.bindings ?? testEnv());
}

/** GET /api/v1/usage for `token`. */
async function usage(token: string, bindings = testEnv()): Promise<UsageBody> {
  const { res } = await call("/api/v1/usage", { headers: bearer(token), ip: freshIp() }, bindings);
  expect(res.status).toBe(200);
  return (await res.json()) as UsageBody;
}

/** What the fake upstream saw for directive `id`, which it must have seen. */
async function upstreamRecord(id: string): Promise<UpstreamRecord> {
  const record = await recordOf(id);
  expect(record).not.toBeNull();
  return record as UpstreamRecord;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls the fake's record until `until` holds; at most ~2 s (40 × 50 ms), then returns the last one. */
async function pollUpstream(
  id: string,
  until: (r: UpstreamRecord) => boolean,
): Promise<UpstreamRecord> {
  let record = await upstreamRecord(id);
  for (let i = 0; i < 40 && !until(record); i++) {
    await sleep(50);
    record = await upstreamRecord(id);
  }
  return record;
}

/** The limits key of a token's principal (`anonymous:<sub>` or `supabase:<sub>`). */
function principalKey(token: string): string {
  const { sub, iss } = decodeJwt(token);
  const source =
    typeof iss === "string" && iss.startsWith("urn:magic-box:") ? "anonymous" : "supabase";
  return `${source}:${sub}`;
}

/** The ledger records of a principal, read from its Durable Object (named as durableStore names it). */
async function ledgerOf(key: string): Promise<LedgerRecord[]> {
  const ns = env.LIMITS as unknown as DurableObjectNamespace<LimitsStore>;
  const prefix = parseConfig(testEnv()).storePrefix;
  return (await ns.get(ns.idFromName(`${prefix}:user:${key}`)).records()) as LedgerRecord[];
}

/** A fresh Supabase user's token and its principal key. */
async function supabaseUser(): Promise<{ token: string; key: string }> {
  const claims = supabaseClaims();
  return { token: await supabaseHs256(claims), key: `supabase:${claims.sub}` };
}

const TERMINAL = new Set(["done", "error"]);

/** The contract's framing: ids 1..n, known event names, exactly one terminal event, last. */
function expectFraming(events: SseEvent[]): void {
  expect(events.map((e) => e.id)).toEqual(events.map((_, i) => String(i + 1)));
  for (const e of events) {
    expect(["message_chunk", "heartbeat", "done", "error"]).toContain(e.event);
  }
  expect(events.filter((e) => TERMINAL.has(e.event ?? "")).length).toBe(1);
  expect(TERMINAL.has(events.at(-1)?.event ?? "")).toBe(true);
}

const chunksOf = (events: SseEvent[]) =>
  events.filter((e) => e.event === "message_chunk").map((e) => e.data as unknown as ChunkData);
const doneOf = (events: SseEvent[]) => {
  const done = events.find((e) => e.event === "done");
  expect(done, "a done event").toBeDefined();
  return done?.data as unknown as DoneData;
};
const errorOf = (events: SseEvent[]) => {
  const error = events.find((e) => e.event === "error");
  expect(error, "an error event").toBeDefined();
  return error?.data as unknown as ErrorData;
};

/** Exact cost in µUSD from prices in hundredths of a µUSD per token (no floats involved). */
const PRICES_CENTI_MICRO: Record<string, [number, number]> = {
  "gpt-4o-mini": [15, 60],
  "gpt-4o": [250, 1000],
};
function expectedMicro(model: string, input: number, output: number): number {
  const [pin, pout] = PRICES_CENTI_MICRO[model] as [number, number];
  return Math.ceil((input * pin + output * pout) / 100);
}

/** The prompt tokens the fake reports: its own rule over the messages it was sent. */
const fakePromptTokens = (message: string) =>
  Math.ceil(JSON.stringify([{ role: "user", content: message }]).length / 4);

describe("frames", () => {
  it("sends message_chunk frames with running totals, ids 1..n and exactly one done", async () => {
    const token = await anonToken();
    const { message } = fakeMessage({ tokens: 5 });
    const { res, settled } = await startStream({ token, message });
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toBe("text/event-stream; charset=utf-8");
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    expect(res.headers.get("X-Accel-Buffering")).toBe("no");
    expect(res.headers.get("RateLimit-Limit")).not.toBeNull();
    const events = await readEvents(res);
    await settled();

    expectFraming(events);
    expect(events.at(-1)?.event).toBe("done");
    const chunks = chunksOf(events);
    expect(chunks.length).toBe(5);
    expect(chunks.map((c) => c.content).join("")).toBe("tok tok tok tok tok");
    for (const [i, c] of chunks.entries()) {
      expect(c.output_tokens).toBe(i + 1);
      if (i > 0) expect(c.cost_usd).toBeGreaterThanOrEqual((chunks[i - 1] as ChunkData).cost_usd);
    }
    const done = doneOf(events);
    expect(done.stream_id).toBe(res.headers.get("X-Stream-Id"));
    expect(done).toMatchObject({
      model: "gpt-4o-mini",
      provider: "openai",
      output_tokens: 5,
      finish_reason: "stop",
      usage_source: "upstream",
    });
    expect(done.ttft_ms).toBeGreaterThanOrEqual(0);
    expect(done.duration_ms).toBeGreaterThanOrEqual(done.ttft_ms ?? 0);
  });

  it("keeps newlines, \\r and fake SSE fields in the content from breaking the framing", async () => {
    const token = await anonToken();
    const text = 'a\n\nevent: done\ndata: {"x":1}\r\rid: 99\r\n\r\n:comment\ndata: é🙂\n';
    const textb64 = btoa(String.fromCharCode(...new TextEncoder().encode(text)))
      .replace(/\+/g, "-")
      .replace(/\//g, "_")
      .replace(/=+$/, "");
    const { message } = fakeMessage({ tokens: 4, textb64 });
    const { res, settled } = await startStream({ token, message });
    const events = await readEvents(res);
    await settled();

    expectFraming(events);
    expect(events.filter((e) => e.event === "done").length).toBe(1);
    expect(
      chunksOf(events)
        .map((c) => c.content)
        .join(""),
    ).toBe([text, ` ${text}`, ` ${text}`, ` ${text}`].join(""));
  });

  it("forwards the first token as soon as it arrives", async () => {
    const token = await anonToken();
    const { id, message } = fakeMessage({ tokens: 3, delay: 400 });
    const { res, settled } = await startStream({ token, message });
    const reader = openEvents(res);
    const first = await reader.next();
    expect(first?.event).toBe("message_chunk");
    // The fake waits 400 ms before its second token: had anything buffered, it would have sent more.
    expect((await upstreamRecord(id)).tokensSent).toBe(1);
    const rest = await reader.rest();
    await settled();
    expectFraming([first as SseEvent, ...rest]);
    expect(doneOf(rest).output_tokens).toBe(3);
  });

  it.each([
    ["gpt-4o-mini", 0.5],
    ["gpt-4o-mini", 0.00002],
    ["gpt-4o", 0.001],
    ["gpt-4o", 0.0003],
  ] as const)("asks %s for usage and a max_tokens its cap %s can pay for", async (model, cap) => {
    const token = await anonToken();
    const { id, message } = fakeMessage({ tokens: 2 });
    const { res, settled } = await startStream({ token, message, model, cost_cap_usd: cap });
    expect(res.status).toBe(200);
    await readEvents(res);
    await settled();

    const record = await upstreamRecord(id);
    expect(record.includeUsage).toBe(true);
    expect(record.model).toBe(model);
    const expected = maxOutputTokens(
      MODELS[model],
      [{ role: "user", content: message }],
      usdToMicro(cap),
    );
    expect(record.maxTokens).toBe(expected);
    expect(expected).toBeGreaterThan(0);
    // Even if every byte of the message were a token, maxTokens output stays within the cap.
    const worstInput = new TextEncoder().encode(message).byteLength + 8;
    expect(expectedMicro(model, worstInput, expected)).toBeLessThanOrEqual(Math.round(cap * 1e6));
  });
});

describe("cost", () => {
  it.each(["gpt-4o-mini", "gpt-4o"] as const)(
    "bills %s from the upstream's usage, rounded up to whole µUSD",
    async (model) => {
      const { token, key } = await supabaseUser();
      const { message } = fakeMessage({ tokens: 7 });
      const { res, settled } = await startStream({ token, message, model });
      const events = await readEvents(res);
      await settled();

      const done = doneOf(events);
      const input = fakePromptTokens(message);
      expect(done).toMatchObject({
        usage_source: "upstream",
        input_tokens: input,
        output_tokens: 7,
      });
      const micro = expectedMicro(model, input, 7);
      expect(done.cost_usd).toBe(micro / 1e6);

      const [record] = await ledgerOf(key);
      expect(record).toMatchObject({
        costMicroUsd: micro,
        inputTokens: input,
        outputTokens: 7,
        usageSource: "upstream",
      });
      expect((await usage(token)).spend.total_usd).toBe(micro / 1e6);
    },
  );

  it("records an upper bound of the cost when the upstream sends no usage", async () => {
    const token = await anonToken();
    const { message } = fakeMessage({ tokens: 6, usage: 0 });
    const { res, settled } = await startStream({ token, message, model: "gpt-4o" });
    const events = await readEvents(res);
    await settled();

    const done = doneOf(events);
    const chunks = chunksOf(events);
    expect(done.usage_source).toBe("estimated");
    // The input at the hold's bound (bytes and framing), the output at the bytes that arrived.
    expect(done.input_tokens).toBe(inputTokensUpperBound([{ role: "user", content: message }]));
    expect(done.input_tokens).toBe(new TextEncoder().encode(message).byteLength + 8);
    const text = chunks.map((c) => c.content).join("");
    expect(text).toBe("tok tok tok tok tok tok");
    expect(done.output_tokens).toBe(textTokensUpperBound(text));
    expect(done.output_tokens).toBe(23);
    expect(done.cost_usd).toBe(
      expectedMicro("gpt-4o", done.input_tokens, done.output_tokens) / 1e6,
    );
    // Never below the running figure the client saw.
    expect(done.cost_usd).toBeGreaterThanOrEqual(chunks.at(-1)?.cost_usd ?? Infinity);
  });

  it("ends with done cost_cap within the cap and cancels an upstream that ignores max_tokens", async () => {
    const token = await anonToken();
    const key = principalKey(token);
    const cap = 0.0003;
    const { id, message } = fakeMessage({ tokens: 200, delay: 20, ignoremax: 1 }, "Count.");
    const { res, settled } = await startStream({
      token,
      message,
      model: "gpt-4o",
      cost_cap_usd: cap,
    });
    const events = await readEvents(res);
    await settled();

    expectFraming(events);
    const done = doneOf(events);
    expect(done.finish_reason).toBe("cost_cap");
    expect(done.cost_usd).toBeLessThanOrEqual(cap);
    expect(done.output_tokens).toBeGreaterThan(0);
    for (const c of chunksOf(events)) expect(c.cost_usd).toBeLessThanOrEqual(cap);

    const record = await pollUpstream(id, (r) => r.clientAborted);
    expect(record.clientAborted).toBe(true);
    expect(record.tokensSent).toBeLessThan(200);
    const [entry] = await ledgerOf(key);
    expect(entry).toMatchObject({ finishReason: "cost_cap", costMicroUsd: done.cost_usd * 1e6 });
  });

  it("ends with done max_duration after STREAM_MAX_DURATION_MS and cancels the upstream", async () => {
    const token = await anonToken();
    const { id, message } = fakeMessage({ tokens: 50, delay: 200 });
    const bindings = testEnv({ STREAM_MAX_DURATION_MS: "1000" });
    const { res, settled } = await startStream({ token, message, bindings });
    const events = await readEvents(res);
    await settled();

    expectFraming(events);
    const done = doneOf(events);
    expect(done.finish_reason).toBe("max_duration");
    // Stopped before its finish, without usage: billed at the max_tokens the upstream was sent.
    const seen = await pollUpstream(id, (r) => r.clientAborted);
    expect(seen.clientAborted).toBe(true);
    expect(seen.tokensSent).toBeLessThan(50);
    expect(done).toMatchObject({ output_tokens: seen.maxTokens, usage_source: "estimated" });
  });

  it("still ends at max_duration and records the cost when the client stops reading", async () => {
    const { token, key } = await supabaseUser();
    // Words the estimator counts about as a tokenizer does: the cap (the hold) is not what stops it.
    const { id, message } = fakeMessage({ tokens: 400, delay: 5, text: "word".repeat(25) });
    const bindings = testEnv({ STREAM_MAX_DURATION_MS: "1000" });
    const { res, settled } = await startStream({ token, message, bindings });
    expect(res.status).toBe(200);
    // The body is never read: backpressure fills the stream, and the session must not wait on it.
    await settled();
    const [entry] = await ledgerOf(key);
    expect(entry).toMatchObject({ finishReason: "max_duration" });
    expect(entry?.outputTokens).toBeGreaterThan(0);
    expect((await pollUpstream(id, (r) => r.clientAborted)).clientAborted).toBe(true);
    await res.body?.cancel();
  });
});

describe("clients that leave before the upstream answers", () => {
  it("records the prompt's cost and keeps the quota spent, without calling it an upstream error", async () => {
    const token = await anonToken();
    const key = principalKey(token);
    const { id, message } = fakeMessage({ headerDelay: 1500, tokens: 3 });
    const controller = new AbortController();
    // The direct path: a resumable stream goes on for the orphan grace (test/stream/).
    const bindings = testEnv({ STREAM_RESUME_TTL_S: "0" });
    const pending = startStream({ token, message, signal: controller.signal, bindings });
    // Wait (bounded) until the upstream has the request, then leave.
    for (let i = 0; i < 40; i++) {
      if ((await fetch(`${UPSTREAM_BASE}/__test/requests/${id}`)).status === 200) break;
      await sleep(25);
    }
    controller.abort();
    const { res, settled } = await pending;
    await settled();
    expect(res.status).toBe(499);
    const [entry] = await ledgerOf(key);
    // Asked and never answered: the provider may bill the prompt and what it began to generate.
    expect(entry).toMatchObject({ finishReason: "client_abort", usageSource: "estimated" });
    expect(entry?.outputTokens).toBe((await recordOf(id))?.maxTokens);
    expect(entry?.costMicroUsd).toBeGreaterThan(0);
    expect((await usage(token)).quota?.hourly.remaining).toBe(19);
  });
});

describe("clients that do not read", () => {
  it("refuses HEAD, which would otherwise run and bill a stream whose body nobody reads", async () => {
    const token = await anonToken();
    const before = await usage(token);
    const { id, message } = fakeMessage({ tokens: 5 });
    const called = await call(`/api/v1/stream?message=${encodeURIComponent(message)}`, {
      method: "HEAD",
      headers: bearer(token),
      ip: freshIp(),
    });
    await called.settled();
    expect(called.res.status).toBe(405);
    const allow = called.res.headers.get("Allow") ?? "";
    expect(allow).toContain("GET");
    expect(allow).toContain("POST");
    expect(allow).not.toContain("HEAD");
    expect((await fetch(`${UPSTREAM_BASE}/__test/requests/${id}`)).status).toBe(404);
    expect((await usage(token)).quota).toEqual(before.quota);
  });

  it("cuts off a client that falls too far behind, metering what the upstream produced", async () => {
    const { token, key } = await supabaseUser();
    const { id, message } = fakeMessage({ tokens: 3000, delay: 1 });
    const { res, settled } = await startStream({ token, message });
    expect(res.status).toBe(200);
    await settled();
    const [entry] = await ledgerOf(key);
    expect(entry).toMatchObject({ finishReason: "client_abort" });
    // Cut off mid-generation, without usage: billed at the max_tokens the upstream was sent,
    // never less than what was metered.
    const seen = await pollUpstream(id, (r) => r.clientAborted);
    expect(seen.clientAborted).toBe(true);
    expect(seen.tokensSent).toBeGreaterThan(MAX_QUEUED_FRAMES);
    expect(seen.tokensSent).toBeLessThan(3000);
    expect(entry?.outputTokens).toBe(seen.maxTokens);
    // Still connected, it gets what was queued for it, then the end (no terminal frame).
    const rest = await openEvents(res).rest();
    expect(rest.length).toBeGreaterThan(MAX_QUEUED_FRAMES);
    expect(rest.filter((e) => TERMINAL.has(e.event ?? ""))).toEqual([]);
  });
});

describe("upstream faults", () => {
  const LEAKS = ["sk-live", "secret upstream internals", "upstream status"];

  it("answers 502 upstream_error for a non-2xx before the first token and refunds the quota", async () => {
    const token = await anonToken();
    const before = await usage(token);
    const { message } = fakeMessage({ status: 500 });
    const { res, settled } = await startStream({ token, message });
    const text = await res.text();
    await settled();

    expect(res.status).toBe(502);
    expect(JSON.parse(text)).toMatchObject({ error_code: "upstream_error", retry_after: null });
    for (const leak of LEAKS) expect(text).not.toContain(leak);
    const after = await usage(token);
    expect(after.quota?.hourly.remaining).toBe(before.quota?.hourly.remaining);
    expect(after.quota?.total.remaining).toBe(before.quota?.total.remaining);
    // One record of nothing spent: it settles the stream's budget hold.
    expect(after.spend.streams).toBe(1);
    expect(after.spend.total_usd).toBe(0);
  });

  it("answers 503 upstream_busy with Retry-After for an upstream 429 and refunds the quota", async () => {
    const token = await anonToken();
    const before = await usage(token);
    const { message } = fakeMessage({ status: 429 });
    const { res, settled } = await startStream({ token, message });
    const text = await res.text();
    await settled();

    expect(res.status).toBe(503);
    expect(res.headers.get("Retry-After")).toBe("7");
    expect(JSON.parse(text)).toMatchObject({ error_code: "upstream_busy", retry_after: 7 });
    for (const leak of LEAKS) expect(text).not.toContain(leak);
    const after = await usage(token);
    expect(after.quota?.hourly.remaining).toBe(before.quota?.hourly.remaining);
    expect(after.quota?.total.remaining).toBe(before.quota?.total.remaining);
  });

  it("sends the same refusal as one SSE error frame to an event-stream client", async () => {
    const token = await anonToken();
    const { message } = fakeMessage({ status: 429 });
    const { res, settled } = await startStream({ token, message, accept: "text/event-stream" });
    const events = await readEvents(res);
    await settled();

    expect(res.status).toBe(503);
    expect(res.headers.get("Content-Type")).toContain("text/event-stream");
    expect(events).toEqual([
      {
        id: "1",
        event: "error",
        data: expect.objectContaining({ error_code: "upstream_busy", retry_after: 7 }),
      },
    ]);
  });

  it.each([
    ["a malformed chunk", { bad: 2 }, 2, {}],
    ["a cut connection", { cut: 3, linger: 100 }, 3, {}],
    ["a silent upstream", { hang: 2 }, 2, { UPSTREAM_IDLE_TIMEOUT_MS: "300" }],
  ] as const)(
    "ends %s mid-stream with one error frame and records the partial cost",
    async (_, fault, sent, overrides) => {
      const token = await anonToken();
      const key = principalKey(token);
      const { id, message } = fakeMessage({ tokens: 5, ...fault });
      const bindings = testEnv(overrides);
      const { res, settled } = await startStream({ token, message, bindings });
      expect(res.status).toBe(200);
      const events = await readEvents(res);
      await settled();

      expectFraming(events);
      expect(events.map((e) => e.event)).toEqual([
        ...Array.from({ length: sent }, () => "message_chunk"),
        "error",
      ]);
      expect(errorOf(events)).toEqual({
        error_code: "upstream_error",
        detail: expect.any(String),
        retry_after: null,
      });
      expect(JSON.stringify(events)).not.toContain("not json");

      const after = await usage(token, bindings);
      expect(after.spend.streams).toBe(1);
      expect(after.spend.total_usd).toBeGreaterThan(0);
      // The stream had started: its quota stays spent.
      expect(after.quota?.hourly.remaining).toBe(19);
      const [entry] = await ledgerOf(key);
      // No usage and no finish: the upstream may have generated up to the max_tokens it was
      // sent, and that bound is what is recorded.
      const seen = await recordOf(id);
      expect(entry).toMatchObject({
        finishReason: "upstream_error",
        outputTokens: seen?.maxTokens,
        usageSource: "estimated",
      });
      // A silent upstream is hung up on, not left open.
      if ("hang" in fault) {
        expect((await pollUpstream(id, (r) => r.clientAborted)).clientAborted).toBe(true);
      }
    },
  );

  it.each([
    ["a cut", { cut: 0 }],
    ["a malformed chunk", { bad: 0 }],
  ] as const)("refunds the quota when %s comes before the first token", async (_, fault) => {
    const token = await anonToken();
    const before = await usage(token);
    const { message } = fakeMessage({ tokens: 3, ...fault });
    const { res, settled } = await startStream({ token, message });
    const events = await readEvents(res);
    await settled();

    expect(events.map((e) => e.event)).toEqual(["error"]);
    expect(errorOf(events).error_code).toBe("upstream_error");
    const after = await usage(token);
    expect(after.quota?.hourly.remaining).toBe(before.quota?.hourly.remaining);
    expect(after.quota?.total.remaining).toBe(before.quota?.total.remaining);
  });
});

describe("disconnects", () => {
  it("cancels the upstream when the client cancels the body, and records what was generated", async () => {
    const token = await anonToken();
    const key = principalKey(token);
    const { id, message } = fakeMessage({ tokens: 50, delay: 100 });
    const { res, settled } = await startStream({ token, message });
    const streamId = res.headers.get("X-Stream-Id");
    const reader = openEvents(res);
    expect((await reader.next())?.event).toBe("message_chunk");
    expect((await reader.next())?.event).toBe("message_chunk");
    await reader.cancel();

    const record = await pollUpstream(id, (r) => r.clientAborted);
    expect(record.clientAborted).toBe(true);
    expect(record.tokensSent).toBeLessThan(50);
    await settled();
    const entries = await ledgerOf(key);
    expect(entries.length).toBe(1);
    expect(entries[0]).toMatchObject({ streamId, finishReason: "client_abort" });
    expect(entries[0]?.outputTokens).toBeGreaterThanOrEqual(2);
    expect(entries[0]?.costMicroUsd).toBeGreaterThan(0);
  });

  it("cancels the upstream when the request's signal aborts, and records what was generated", async () => {
    const token = await anonToken();
    const key = principalKey(token);
    const abort = new AbortController();
    const { id, message } = fakeMessage({ tokens: 50, delay: 100 });
    const { res, settled } = await startStream({ token, message, signal: abort.signal });
    const reader = openEvents(res);
    expect((await reader.next())?.event).toBe("message_chunk");
    expect((await reader.next())?.event).toBe("message_chunk");
    abort.abort();

    const record = await pollUpstream(id, (r) => r.clientAborted);
    expect(record.clientAborted).toBe(true);
    // The body is not left open without a writer: it ends, without a terminal frame.
    const rest = await reader.untilGone();
    expect(rest.events.filter((e) => TERMINAL.has(e.event ?? ""))).toEqual([]);
    await settled();
    const entries = await ledgerOf(key);
    expect(entries.length).toBe(1);
    expect(entries[0]).toMatchObject({ finishReason: "client_abort" });
    expect(entries[0]?.outputTokens).toBeGreaterThanOrEqual(2);
  });

  it("cancels the upstream when a client over HTTP goes away (workerd's own request path)", async () => {
    const token = await anonToken();
    const key = principalKey(token);
    const { id, message } = fakeMessage({ tokens: 50, delay: 100 });
    const res = await exports.default.fetch(
      `http://gateway.test/api/v1/stream?${new URLSearchParams({ message })}`,
      { headers: { ...bearer(token), "CF-Connecting-IP": freshIp() } },
    );
    expect(res.status).toBe(200);
    const reader = openEvents(res);
    expect((await reader.next())?.event).toBe("message_chunk");
    await reader.cancel();

    const record = await pollUpstream(id, (r) => r.clientAborted);
    expect(record.clientAborted).toBe(true);
    // No settled() for this path: poll the ledger instead (bounded, ~2 s).
    let entries = await ledgerOf(key);
    for (let i = 0; i < 40 && entries.length === 0; i++) {
      await sleep(50);
      entries = await ledgerOf(key);
    }
    expect(entries[0]).toMatchObject({ finishReason: "client_abort" });
    expect(entries[0]?.outputTokens).toBeGreaterThan(0);
  });
});

describe("ledger", () => {
  it("writes one record per stream, echoes a client stream_id and counts each stream once", async () => {
    const { token, key } = await supabaseUser();
    const streamId = `client-${crypto.randomUUID().slice(0, 8)}_x`;
    const first = await startStream({
      token,
      message: fakeMessage({ tokens: 3 }).message,
      stream_id: streamId,
      method: "POST",
    });
    expect(first.res.headers.get("X-Stream-Id")).toBe(streamId);
    const firstDone = doneOf(await readEvents(first.res));
    await first.settled();
    expect(firstDone.stream_id).toBe(streamId);

    const second = await startStream({ token, message: fakeMessage({ tokens: 4 }).message });
    const secondId = second.res.headers.get("X-Stream-Id");
    expect(secondId).toMatch(/^[0-9a-f-]{36}$/);
    const secondDone = doneOf(await readEvents(second.res));
    await second.settled();
    expect(secondDone.stream_id).toBe(secondId);

    const spend = (await usage(token)).spend;
    expect(spend.streams).toBe(2);
    expect(spend.total_usd).toBeCloseTo(firstDone.cost_usd + secondDone.cost_usd, 9);

    const records = await ledgerOf(key);
    expect(records.length).toBe(2);
    const byStream = new Map(records.map((r) => [r.streamId, r]));
    for (const [id, done] of [
      [streamId, firstDone],
      [secondId, secondDone],
    ] as const) {
      const r = byStream.get(id ?? "");
      expect(r).toMatchObject({
        streamId: id,
        userKey: key,
        model: "gpt-4o-mini",
        provider: "openai",
        inputTokens: done.input_tokens,
        outputTokens: done.output_tokens,
        costMicroUsd: Math.round(done.cost_usd * 1e6),
        finishReason: "stop",
        usageSource: "upstream",
        ttftMs: done.ttft_ms,
      });
      expect(r?.startedAt).toBeGreaterThan(0);
      expect(r?.durationMs).toBeGreaterThanOrEqual(r?.ttftMs ?? 0);
    }
    expect(new Set(records.map((r) => r.recordId)).size).toBe(2);
  });

  it("counts two streams that reuse one client stream_id as two", async () => {
    const { token, key } = await supabaseUser();
    const streamId = `reused-${crypto.randomUUID().slice(0, 8)}`;
    for (let i = 0; i < 2; i++) {
      const { res, settled } = await startStream({
        token,
        message: fakeMessage({ tokens: 2 }).message,
        stream_id: streamId,
      });
      await readEvents(res);
      await settled();
    }
    expect((await usage(token)).spend.streams).toBe(2);
    const records = await ledgerOf(key);
    expect(records.map((r) => r.streamId)).toEqual([streamId, streamId]);
  });

  it.each(["durable_object", "upstash"] as const)(
    "writes a ledger record once in the %s store, however often it is sent",
    async (kind) => {
      const bindings =
        kind === "upstash"
          ? testEnv({
              UPSTASH_REDIS_REST_URL: inject("upstashUrl"),
              UPSTASH_REDIS_REST_TOKEN: inject("upstashToken"),
            })
          : testEnv();
      const store = storeFor(parseConfig(bindings), bindings);
      expect(store.kind).toBe(kind);
      const record: LedgerRecord = {
        recordId: crypto.randomUUID(),
        streamId: "s-1",
        userKey: `supabase:${crypto.randomUUID()}`,
        model: "gpt-4o",
        provider: "openai",
        inputTokens: 20,
        outputTokens: 7,
        costMicroUsd: 120,
        finishReason: "stop",
        usageSource: "upstream",
        startedAt: Date.now(),
        ttftMs: 5,
        durationMs: 50,
      };
      const spend = async () => (await store.usage(record.userKey, "ip:203.0.113.9", false)).spend;

      expect(await store.writeLedger(record)).toBe("written");
      expect(await store.writeLedger({ ...record })).toBe("duplicate");
      // Through the retrying writer too: a replayed record is a duplicate, not an error.
      expect(await writeLedger(store, record, createLogger("test"), [1, 1])).toBe("duplicate");
      expect(await spend()).toMatchObject({ streams: 1, totalUsd: 0.00012, todayUsd: 0.00012 });

      // Another stream with the same client stream_id is another record.
      expect(await store.writeLedger({ ...record, recordId: crypto.randomUUID() })).toBe("written");
      expect(await spend()).toMatchObject({ streams: 2, totalUsd: 0.00024 });
    },
  );

  it("records streams in the Upstash store when it is configured", async () => {
    const bindings = testEnv({
      UPSTASH_REDIS_REST_URL: inject("upstashUrl"),
      UPSTASH_REDIS_REST_TOKEN: inject("upstashToken"),
    });
    const token = await anonToken();
    const { res, settled } = await startStream({
      token,
      message: fakeMessage({ tokens: 3 }).message,
      bindings,
    });
    const done = doneOf(await readEvents(res));
    await settled();
    expect(done.quota).toEqual({ hourly_remaining: 19, total_remaining: 99 });
    const after = await usage(token, bindings);
    expect(after.spend.streams).toBe(1);
    expect(after.spend.total_usd).toBe(done.cost_usd);
  });
});

describe("heartbeats", () => {
  it("sends heartbeat frames while the stream is open, in the same id sequence", async () => {
    const token = await anonToken();
    const { message } = fakeMessage({ tokens: 6, delay: 150 });
    const bindings = testEnv({ HEARTBEAT_INTERVAL_MS: "100" });
    const { res, settled } = await startStream({ token, message, bindings });
    const events = await readEvents(res);
    await settled();

    expectFraming(events);
    const heartbeats = events.filter((e) => e.event === "heartbeat");
    expect(heartbeats.length).toBeGreaterThanOrEqual(1);
    for (const h of heartbeats) {
      expect(Object.keys(h.data)).toEqual(["ts"]);
      expect(typeof h.data.ts).toBe("number");
      expect(Number.isInteger(h.data.ts)).toBe(true);
    }
    expect(chunksOf(events).length).toBe(6);
    expect(events.at(-1)?.event).toBe("done");
  });
});

describe("methods and principals", () => {
  it("streams by GET and by POST; anonymous done carries the quota left", async () => {
    const token = await anonToken();
    const get = await startStream({ token, message: fakeMessage({ tokens: 2 }).message });
    const getDone = doneOf(await readEvents(get.res));
    await get.settled();
    expect(getDone.quota).toEqual({ hourly_remaining: 19, total_remaining: 99 });

    const post = await startStream({
      token,
      message: fakeMessage({ tokens: 2 }).message,
      method: "POST",
      model: "gpt-4o",
      cost_cap_usd: 0.01,
    });
    expect(post.res.status).toBe(200);
    const postDone = doneOf(await readEvents(post.res));
    await post.settled();
    expect(postDone.model).toBe("gpt-4o");
    expect(postDone.quota).toEqual({ hourly_remaining: 18, total_remaining: 98 });
  });

  it("gives a Supabase user's done no quota", async () => {
    const { token } = await supabaseUser();
    const { res, settled } = await startStream({
      token,
      message: fakeMessage({ tokens: 2 }).message,
      method: "POST",
    });
    const done = doneOf(await readEvents(res));
    await settled();
    expect(done.finish_reason).toBe("stop");
    expect(done).not.toHaveProperty("quota");
  });
});

describe("demo provider", () => {
  it("answers in development without OPENAI_API_KEY", async () => {
    const token = await anonToken();
    const message = "What is the demo?";
    const { res, settled } = await startStream({
      token,
      message,
      bindings: testEnv({ OPENAI_API_KEY: undefined }),
    });
    expect(res.status).toBe(200);
    const events = await readEvents(res);
    await settled();

    expectFraming(events);
    const done = doneOf(events);
    expect(done).toMatchObject({ provider: "demo", finish_reason: "stop" });
    expect(
      chunksOf(events)
        .map((c) => c.content)
        .join(""),
    ).toBe(demoAnswer(message).join(""));
  });

  it("answers 503 model_unavailable in production without OPENAI_API_KEY, spending nothing", async () => {
    const bindings = testEnv({
      OPENAI_API_KEY: undefined,
      ENVIRONMENT: "production",
      SECRET_KEY,
      OPENAI_BASE_URL: "https://api.openai.com/v1",
      // Production refuses plain-http addresses; the test env's point at loopback servers.
      SUPABASE_URL: "https://abcdefghijklmnop.supabase.co",
      SUPABASE_JWKS_URL: undefined,
    });
    const token = await anonToken();
    const before = await usage(token, bindings);
    const { res, settled } = await startStream({
      token,
      message: "hello",
      bindings,
    });
    const body = (await res.json()) as ErrorData;
    await settled();

    expect(res.status).toBe(503);
    expect(body.error_code).toBe("model_unavailable");
    expect(Number(res.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
    const after = await usage(token, bindings);
    expect(after.quota).toEqual(before.quota);
    expect(after.limits.user.remaining).toBe(after.limits.user.limit);
    expect(after.spend.streams).toBe(0);
  });
});
