/** @module Clients that leave, stop reading or fall behind: the upstream is cancelled and what it generated is recorded. */
import { exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { MAX_QUEUED_FRAMES } from "../../src/stream/session";
import { call, testEnv } from "../helpers/app";
import {
  fakeMessage,
  freshIp,
  ledgerOf,
  upstreamRecord as recordOf,
  usageOfToken,
} from "../helpers/gate";
import { openEvents } from "../helpers/sse";
import { pinClock } from "../helpers/stores";
import {
  pollUpstream,
  principalKey,
  sleep,
  startStream,
  supabaseUser,
  TERMINAL,
  UPSTREAM_BASE,
} from "../helpers/stream";
import { anonToken, bearer } from "../helpers/tokens";

// pinClock stops the clock for a test; the next starts with the real one.
afterEach(() => {
  vi.useRealTimers();
});

describe("clients that leave before the upstream answers", () => {
  it("records the prompt's cost and keeps the quota spent, without calling it an upstream error", async () => {
    // Exact hourly counts: no turn of the hour during the test.
    pinClock(3_600_000, 60_000);
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
    expect((await usageOfToken(token)).quota?.hourly.remaining).toBe(19);
  });
});

describe("clients that do not read", () => {
  it("refuses HEAD, which would otherwise run and bill a stream whose body nobody reads", async () => {
    const token = await anonToken();
    const before = await usageOfToken(token);
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
    expect((await usageOfToken(token)).quota).toEqual(before.quota);
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
