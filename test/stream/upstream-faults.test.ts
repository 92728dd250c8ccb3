/** @module Upstream faults before and after the first token: the client's answer leaks nothing and the quota is refunded when nothing was served. */
import { afterEach, describe, expect, it, vi } from "vitest";
import { testEnv } from "../helpers/app";
import { fakeMessage, ledgerOf, upstreamRecord as recordOf, usageOfToken } from "../helpers/gate";
import { readEvents } from "../helpers/sse";
import { pinClock } from "../helpers/stores";
import { errorOf, expectFraming, pollUpstream, principalKey, startStream } from "../helpers/stream";
import { anonToken } from "../helpers/tokens";

// pinClock stops the clock for a test; the next starts with the real one.
let ticking: ReturnType<typeof setInterval> | undefined;
afterEach(() => {
  if (ticking) clearInterval(ticking);
  ticking = undefined;
  vi.useRealTimers();
});

describe("upstream faults", () => {
  const LEAKS = ["sk-live", "secret upstream internals", "upstream status"];

  it("answers 502 upstream_error for a non-2xx before the first token and refunds the quota", async () => {
    const token = await anonToken();
    const before = await usageOfToken(token);
    const { message } = fakeMessage({ status: 500 });
    const { res, settled } = await startStream({ token, message });
    const text = await res.text();
    await settled();

    expect(res.status).toBe(502);
    expect(JSON.parse(text)).toMatchObject({ error_code: "upstream_error", retry_after: null });
    for (const leak of LEAKS) expect(text).not.toContain(leak);
    const after = await usageOfToken(token);
    expect(after.quota?.hourly.remaining).toBe(before.quota?.hourly.remaining);
    expect(after.quota?.total.remaining).toBe(before.quota?.total.remaining);
    // One record of nothing spent: it settles the stream's budget hold.
    expect(after.spend.streams).toBe(1);
    expect(after.spend.total_usd).toBe(0);
  });

  it("answers 503 upstream_busy with Retry-After for an upstream 429 and refunds the quota", async () => {
    const token = await anonToken();
    const before = await usageOfToken(token);
    const { message } = fakeMessage({ status: 429 });
    const { res, settled } = await startStream({ token, message });
    const text = await res.text();
    await settled();

    expect(res.status).toBe(503);
    expect(res.headers.get("Retry-After")).toBe("7");
    expect(JSON.parse(text)).toMatchObject({ error_code: "upstream_busy", retry_after: 7 });
    for (const leak of LEAKS) expect(text).not.toContain(leak);
    const after = await usageOfToken(token);
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
      // Exact hourly counts: no turn of the hour during the test. The idle watch measures the
      // silence on Date, so the pinned clock moves on, 20 ms a tick, from a moment a minute or
      // more before the hour's end (a test times out in 20 s).
      pinClock(3_600_000, 60_000);
      ticking = setInterval(() => vi.setSystemTime(Date.now() + 20), 20);
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

      const after = await usageOfToken(token, bindings);
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
    const before = await usageOfToken(token);
    const { message } = fakeMessage({ tokens: 3, ...fault });
    const { res, settled } = await startStream({ token, message });
    const events = await readEvents(res);
    await settled();

    expect(events.map((e) => e.event)).toEqual(["error"]);
    expect(errorOf(events).error_code).toBe("upstream_error");
    const after = await usageOfToken(token);
    expect(after.quota?.hourly.remaining).toBe(before.quota?.hourly.remaining);
    expect(after.quota?.total.remaining).toBe(before.quota?.total.remaining);
  });
});
