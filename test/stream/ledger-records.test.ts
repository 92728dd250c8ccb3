/** @module The ledger record of each stream: one per stream, the client's stream_id echoed, in both stores. */
import { afterEach, describe, expect, inject, it, vi } from "vitest";
import { parseConfig } from "../../src/config";
import type { LedgerRecord } from "../../src/ledger/record";
import { writeLedger } from "../../src/ledger/write";
import { storeFor } from "../../src/limits/select-store";
import { createLogger } from "../../src/observe/log";
import { testEnv } from "../helpers/app";
import { fakeMessage, ledgerOf, usageOfToken } from "../helpers/gate";
import { readEvents } from "../helpers/sse";
import { pinClock } from "../helpers/stores";
import { doneOf, startStream, supabaseUser } from "../helpers/stream";
import { anonToken } from "../helpers/tokens";

// pinClock stops the clock for a test; the next starts with the real one.
afterEach(() => {
  vi.useRealTimers();
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

    const spend = (await usageOfToken(token)).spend;
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
    expect((await usageOfToken(token)).spend.streams).toBe(2);
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
    // Exact hourly counts: no turn of the hour during the test.
    pinClock(3_600_000, 60_000);
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
    const after = await usageOfToken(token, bindings);
    expect(after.spend.streams).toBe(1);
    expect(after.spend.total_usd).toBe(done.cost_usd);
  });
});
