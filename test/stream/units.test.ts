/**
 * @module Pure units of src/stream and src/ledger: SSE encoding, cost arithmetic, the meter, the
 * OpenAI-compatible provider over a stub fetch, the session's cancellation, and ledger retries.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { LedgerRecord } from "../../src/ledger/record";
import { writeLedger } from "../../src/ledger/write";
import type { LimitStore } from "../../src/limits/store";
import { createLogger } from "../../src/observe/log";
import {
  costMicroUsd,
  inputTokensUpperBound,
  maxOutputTokens,
  usdToMicro,
} from "../../src/stream/cost";
import { type Frame, frameEncoder } from "../../src/stream/frames";
import { createMeter, newMeterState } from "../../src/stream/meter";
import { MODEL_IDS, MODELS, type ModelInfo } from "../../src/stream/models";
import type { PromptMessage } from "../../src/stream/prompt";
import { openAiProvider } from "../../src/stream/providers/openai";
import type {
  ProviderStream,
  UpstreamEvent,
  UpstreamReader,
} from "../../src/stream/providers/provider";
import { runSession } from "../../src/stream/session";
import { sessionOptions } from "../helpers/session";
import { openEvents, readEvents } from "../helpers/sse";

const mini = MODELS["gpt-4o-mini"];

/** A one-message prompt. */
const user = (content: string): PromptMessage[] => [{ role: "user", content }];

/** Cost in µUSD with prices as exact fractions (hundred-thousandths of a µUSD per token). */
function exactMicro(model: ModelInfo, input: number, output: number): number {
  const pin = Math.round(model.inputUsdPerMillion * 1e5);
  const pout = Math.round(model.outputUsdPerMillion * 1e5);
  return Math.ceil((input * pin + output * pout) / 1e5);
}

/** A stream of `items`, then closed. */
function streamOf<T>(items: T[]): ReadableStream<T> {
  return new ReadableStream<T>({
    start(controller) {
      for (const item of items) controller.enqueue(item);
      controller.close();
    },
  });
}

/** Every event an UpstreamReader returns until it says null. */
async function drain(reader: UpstreamReader): Promise<UpstreamEvent[]> {
  const out: UpstreamEvent[] = [];
  for (let batch = await reader.read(); batch !== null; batch = await reader.read()) {
    out.push(...batch);
  }
  return out;
}

/** An UpstreamReader over a stream of single events (one per read). */
function readerOf(events: ReadableStream<UpstreamEvent>): UpstreamReader {
  const reader = events.getReader();
  return {
    read: async () => {
      const r = await reader.read();
      return r.done ? null : [r.value];
    },
    cancel: (reason) => reader.cancel(reason),
  };
}

const doneData = {
  stream_id: "s",
  model: "m",
  provider: "p",
  upstream_model: null,
  input_tokens: 1,
  output_tokens: 1,
  cost_usd: 0,
  ttft_ms: null,
  duration_ms: 1,
  finish_reason: "stop",
  usage_source: "estimated" as const,
};

describe("frameEncoder", () => {
  it("numbers frames 1..n and keeps any content inside one data line", async () => {
    const nasty = "x\n\nevent: done\ndata: {}\r\rid: 7\r\n: c\n\u2028\u2029 é🙂";
    const frames: Frame[] = [
      { event: "message_chunk", data: { content: nasty, output_tokens: 1, cost_usd: 0.000001 } },
      { event: "heartbeat", data: { ts: 1 } },
      { event: "done", data: { ...doneData, finish_reason: "stop", model: nasty } },
    ];
    const encode = frameEncoder();
    // Ids run on across calls: one frame, then two in one chunk.
    const bytes = [encode(frames.slice(0, 1)), encode(frames.slice(1))].map((b) => b ?? "");
    const events = await readEvents(new Response(new Blob(bytes)));
    expect(events.map((e) => [e.id, e.event])).toEqual([
      ["1", "message_chunk"],
      ["2", "heartbeat"],
      ["3", "done"],
    ]);
    expect(events.map((e) => e.data)).toEqual(frames.map((f) => f.data));

    const text = new TextDecoder().decode(frameEncoder()(frames) ?? undefined);
    // Three frames of exactly three lines each: no line break of the content reached the wire.
    expect(
      text
        .split("\n\n")
        .filter(Boolean)
        .map((f) => f.split(/\r\n|\r|\n/).length),
    ).toEqual([3, 3, 3]);
  });
});

describe("cost arithmetic", () => {
  it("is exact integer µUSD, rounded up only for a real fraction", () => {
    // 1 × 0.4 + 6 × 1.6 is exactly 10 µUSD (as floats: 10.000000000000002).
    expect(costMicroUsd(MODELS["gpt-4.1-mini"], 1, 6)).toBe(10);
    expect(costMicroUsd(mini, 1, 0)).toBe(1); // 0.15 rounds up
    expect(costMicroUsd(mini, 20, 0)).toBe(3);
    expect(costMicroUsd(mini, 0, 5)).toBe(3);
    expect(costMicroUsd(MODELS["gpt-4o"], 10, 10)).toBe(125);
    expect(costMicroUsd(mini, 0, 0)).toBe(0);
  });

  it("matches exact rational arithmetic for every model over a range of counts", () => {
    for (const id of MODEL_IDS) {
      const model = MODELS[id];
      for (let input = 0; input < 400; input += 7) {
        for (let output = 0; output < 400; output += 3) {
          expect(costMicroUsd(model, input, output)).toBe(exactMicro(model, input, output));
        }
      }
    }
  });

  it("derives the largest max_tokens whose worst-case cost fits the cap", () => {
    const messages = ["hi", "x".repeat(500), "日本語のメッセージ🙂", "a b c ".repeat(100)];
    const caps = [0.00001, 0.00005, 0.0003, 0.001, 0.0123, 0.1, 0.5, 1];
    for (const id of MODEL_IDS) {
      const model = MODELS[id];
      for (const message of messages) {
        const worst = inputTokensUpperBound(user(message));
        for (const cap of caps) {
          const capMicro = usdToMicro(cap);
          const max = maxOutputTokens(model, user(message), capMicro);
          expect(max).toBeGreaterThanOrEqual(0);
          expect(max).toBeLessThanOrEqual(16_384);
          if (max > 0) expect(costMicroUsd(model, worst, max)).toBeLessThanOrEqual(capMicro);
          // Not needlessly small: a few more tokens would not fit (unless the ceiling bound it).
          if (max < 16_384 && costMicroUsd(model, worst, 0) <= capMicro) {
            expect(costMicroUsd(model, worst, max + 3)).toBeGreaterThan(capMicro);
          }
        }
      }
    }
    expect(maxOutputTokens(MODELS["gpt-4o"], user("x".repeat(8000)), 10)).toBe(0);
  });

  it("bounds input by UTF-8 bytes plus framing", () => {
    expect(inputTokensUpperBound(user(""))).toBe(8);
    expect(inputTokensUpperBound(user("abc"))).toBe(3 + 8);
    expect(inputTokensUpperBound(user("é".repeat(10)))).toBe(20 + 8);
    expect(inputTokensUpperBound(user("🙂"))).toBe(4 + 8);
  });
});

describe("createMeter", () => {
  it("emits running totals and stops before a delta would pass the cap", async () => {
    const state = newMeterState();
    const message = "m";
    const model = MODELS["gpt-4o"];
    const input = inputTokensUpperBound(user(message));
    // Cap: the input bound plus exactly three 1-token deltas (10 µUSD each); a 4th is over.
    const cap = costMicroUsd(model, input, 3);
    expect(costMicroUsd(model, input, 4)).toBeGreaterThan(cap);
    const events: UpstreamEvent[] = Array.from({ length: 10 }, () => ({
      type: "delta",
      text: "ab",
    }));
    const meter = createMeter(model, user(message), cap, state, () => 42);
    const frames = events.map((e) => meter.take(e)).filter((f) => f !== null);
    expect(frames.map((f) => f.data)).toEqual(
      [1, 2, 3].map((n) => ({
        content: "ab",
        output_tokens: n,
        cost_usd: costMicroUsd(model, input, n) / 1e6,
      })),
    );
    expect(state).toMatchObject({ capped: true, outputTokens: 3, firstTokenAt: 42 });
  });

  it("keeps the upstream's usage and finish reason without emitting frames for them", async () => {
    const state = newMeterState();
    const meter = createMeter(mini, user("m"), 1_000_000, state);
    const frames = (
      [
        { type: "delta", text: "hello" },
        { type: "finish", reason: "length" },
        { type: "usage", inputTokens: 11, outputTokens: 2 },
      ] as const
    )
      .map((e) => meter.take(e))
      .filter((f) => f !== null);
    expect(frames.length).toBe(1);
    expect(state).toMatchObject({
      usage: { inputTokens: 11, outputTokens: 2 },
      finishReason: "length",
      capped: false,
    });
  });
});

/** A response body of `parts`, then `end`: closed, or errored like a lost connection. */
function upstreamBody(parts: string[], end: "close" | "error"): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  let sent = false;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (!sent) {
        sent = true;
        // Everything arrives in one read, the failure right behind it.
        controller.enqueue(enc.encode(parts.join("")));
        return;
      }
      if (end === "close") controller.close();
      else controller.error(new Error("Network connection lost."));
    },
  });
}

const sseChunk = (body: unknown) => `data: ${JSON.stringify(body)}\n\n`;
const delta = (content: string) =>
  sseChunk({ choices: [{ index: 0, delta: { content }, finish_reason: null }] });

/** A provider stream from a stubbed fetch, with the request it was sent. */
async function openStub(
  body: ReadableStream<Uint8Array> | null,
  status = 200,
  headers: Record<string, string> = {},
): Promise<{ stream: ProviderStream; sent: () => Record<string, unknown> }> {
  let sent: Record<string, unknown> = {};
  const fetchStub = (async (_url: RequestInfo | URL, init?: RequestInit) => {
    sent = JSON.parse(String(init?.body)) as Record<string, unknown>;
    return new Response(body, { status, headers });
  }) as typeof fetch;
  const provider = openAiProvider({ apiKey: "k", baseUrl: "http://upstream.test/v1" }, fetchStub);
  const stream = await provider.open({
    model: mini,
    prompt: user("hello"),
    maxTokens: 33,
    signal: new AbortController().signal,
  });
  return { stream, sent: () => sent };
}

describe("openAiProvider", () => {
  it("asks for usage and max_tokens, and turns chunks into events", async () => {
    const { stream, sent } = await openStub(
      upstreamBody(
        [
          delta("Hi"),
          delta(" there"),
          sseChunk({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }] }),
          sseChunk({ choices: [], usage: { prompt_tokens: 9, completion_tokens: 2 } }),
          "data: [DONE]\n\n",
        ],
        "close",
      ),
    );
    expect(sent()).toMatchObject({
      model: "gpt-4o-mini",
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 33,
    });
    expect(await drain(stream.events)).toEqual([
      { type: "delta", text: "Hi" },
      { type: "delta", text: " there" },
      { type: "finish", reason: "stop" },
      { type: "usage", inputTokens: 9, outputTokens: 2 },
    ]);
  });

  it("errors the event stream on an event larger than 256 KiB", async () => {
    const { stream } = await openStub(
      upstreamBody([delta("a"), `data: ${"x".repeat(300 * 1024)}`], "close"),
    );
    await expect(drain(stream.events)).rejects.toThrow();
  });

  it("errors the event stream on a malformed chunk", async () => {
    const { stream } = await openStub(upstreamBody([delta("a"), "data: {nope\n\n"], "close"));
    await expect(drain(stream.events)).rejects.toThrow("malformed upstream chunk");
  });

  it("errors the event stream when the body ends without [DONE] or a finish reason", async () => {
    const { stream } = await openStub(upstreamBody([delta("a"), delta("b")], "close"));
    await expect(drain(stream.events)).rejects.toThrow("ended early");
  });

  it("errors the event stream on an in-band error object", async () => {
    const { stream } = await openStub(
      upstreamBody([delta("a"), sseChunk({ error: { message: "overloaded" } })], "close"),
    );
    await expect(drain(stream.events)).rejects.toThrow("upstream error chunk");
  });

  it("ignores SSE fields it does not know, as the specification says", async () => {
    const { stream } = await openStub(
      upstreamBody([`x-trace: 1\n${delta("a")}`, ": keep-alive\n\n", "data: [DONE]\n\n"], "close"),
    );
    expect(await drain(stream.events)).toEqual([{ type: "delta", text: "a" }]);
  });

  it("refuses 429 as upstream_busy and other statuses as upstream_error, without their text", async () => {
    const secret = () => streamOf([new TextEncoder().encode("sk-live secret upstream internals")]);
    await expect(openStub(secret(), 429, { "Retry-After": "7" })).rejects.toMatchObject({
      code: "upstream_busy",
      retryAfter: 7,
    });
    const failed = openStub(secret(), 500);
    await expect(failed).rejects.toMatchObject({ code: "upstream_error" });
    await failed.catch((e: { detail: string }) => expect(e.detail).not.toContain("sk-live"));
  });
});

describe("runSession", () => {
  it.each([
    ["a lost connection", [delta("a"), delta("b"), delta("c")], "error"],
    ["a malformed chunk", [delta("a"), delta("b"), delta("c"), "data: {nope\n\n"], "close"],
  ] as const)(
    "forwards every chunk that arrived before %s, then one error",
    async (_, parts, end) => {
      const { stream } = await openStub(upstreamBody([...parts], end));
      const session = runSession(stream, sessionOptions());
      const events = await readEvents(new Response(session.body));
      expect(events.map((e) => e.event)).toEqual([
        "message_chunk",
        "message_chunk",
        "message_chunk",
        "error",
      ]);
      const summary = await session.finished;
      // Cut before a finish, without usage: recorded at the max_tokens bound.
      expect(summary).toMatchObject({
        finishReason: "upstream_error",
        outputTokens: 16_384,
        failedBeforeFirstToken: false,
      });
    },
  );

  it("cancels the upstream when the body is cancelled (stream cancellation reaches the session)", async () => {
    const upstreamAbort = new AbortController();
    let cancelled = false;
    let n = 0;
    const events = new ReadableStream<UpstreamEvent>({
      async pull(controller) {
        await new Promise((r) => setTimeout(r, 5));
        controller.enqueue({ type: "delta", text: `t${n++}` });
      },
      cancel() {
        cancelled = true;
      },
    });
    const session = runSession(
      { provider: "test", events: readerOf(events) },
      sessionOptions({ upstreamAbort }),
    );
    const reader = openEvents(new Response(session.body));
    expect((await reader.next())?.event).toBe("message_chunk");
    await reader.cancel();
    const summary = await session.finished;
    expect(upstreamAbort.signal.aborted).toBe(true);
    expect(upstreamAbort.signal.reason).toBe("client_abort");
    expect(cancelled).toBe(true);
    expect(summary.finishReason).toBe("client_abort");
    expect(summary.outputTokens).toBeGreaterThanOrEqual(1);
  });

  it("ends the body (no terminal frame) when the upstream is aborted for a gone client", async () => {
    const upstreamAbort = new AbortController();
    const events = new ReadableStream<UpstreamEvent>({
      start(controller) {
        controller.enqueue({ type: "delta", text: "first" });
      },
    });
    const session = runSession(
      { provider: "test", events: readerOf(events) },
      sessionOptions({ upstreamAbort }),
    );
    const reader = openEvents(new Response(session.body));
    expect((await reader.next())?.event).toBe("message_chunk");
    upstreamAbort.abort("client_abort");
    expect((await reader.untilGone()).events).toEqual([]);
    expect((await session.finished).finishReason).toBe("client_abort");
  });

  it("drops the frames a gone client never read and ends the body at once", async () => {
    const upstreamAbort = new AbortController();
    // An upstream that has sent 20 tokens and is still open.
    const events = new ReadableStream<UpstreamEvent>({
      start(controller) {
        for (let i = 0; i < 20; i++) controller.enqueue({ type: "delta", text: " word" });
      },
    });
    const session = runSession(
      { provider: "test", events: readerOf(events) },
      sessionOptions({ upstreamAbort }),
    );
    // Nobody reads the body: the session meters all 20 and queues their frames.
    await new Promise((r) => setTimeout(r, 20));
    upstreamAbort.abort("client_abort");
    const summary = await session.finished;
    // No usage and no finish: the upstream may have generated up to max_tokens before the stop
    // reached it, and that is what is recorded (never less than the 20 metered).
    expect(summary).toMatchObject({
      finishReason: "client_abort",
      outputTokens: 16_384,
      usageSource: "estimated",
    });
    // Nothing of the queue is kept for a client that is gone: the body ends at once, without
    // delivering a frame, instead of waiting on a reader.
    const reader = session.body.getReader();
    const read = await reader.read().catch(() => ({ done: true, value: undefined }));
    expect(read).toEqual({ done: true, value: undefined });
  });
});

function ledgerRecord(): LedgerRecord {
  return {
    recordId: crypto.randomUUID(),
    streamId: "s",
    userKey: `supabase:${crypto.randomUUID()}`,
    model: "gpt-4o-mini",
    provider: "openai",
    inputTokens: 10,
    outputTokens: 5,
    costMicroUsd: 5,
    finishReason: "stop",
    usageSource: "upstream",
    startedAt: Date.now(),
    ttftMs: 3,
    durationMs: 9,
  };
}

/** A store whose writeLedger fails `failures` times, then answers "written". */
function flakyStore(failures: number): LimitStore & { attempts: () => number } {
  let attempts = 0;
  const unused = () => Promise.reject(new Error("not used here"));
  return {
    kind: "durable_object",
    admit: unused,
    cancelAdmission: unused,
    refundQuota: unused,
    hitSessionMint: unused,
    hitUsageRead: unused,
    usage: unused,
    recordMetrics: unused,
    readMetrics: unused,
    sharedBudgets: unused,
    async writeLedger() {
      attempts++;
      if (attempts <= failures) throw new Error(`store down (${attempts})`);
      return "written";
    },
    attempts: () => attempts,
  } as LimitStore & { attempts: () => number };
}

describe("writeLedger", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("retries a failing store and succeeds without logging an error", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const store = flakyStore(2);
    const result = await writeLedger(store, ledgerRecord(), createLogger("req-1"), [1, 1]);
    expect(result).toBe("written");
    expect(store.attempts()).toBe(3);
    expect(errors).not.toHaveBeenCalled();
  });

  it("logs ledger_write_failed with the record to replay when every attempt fails", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const store = flakyStore(99);
    const record = ledgerRecord();
    const result = await writeLedger(store, record, createLogger("req-2"), [1, 1]);
    expect(result).toBe("failed");
    expect(store.attempts()).toBe(3);
    expect(errors).toHaveBeenCalledTimes(1);
    const line = JSON.parse(String(errors.mock.calls[0]?.[0])) as Record<string, unknown>;
    expect(line).toMatchObject({
      level: "error",
      event: "ledger_write_failed",
      attempts: 3,
      store: "durable_object",
      request_id: "req-2",
    });
    expect(JSON.parse(String(line.replay))).toEqual(record);
  });
});
