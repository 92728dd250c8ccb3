/** @module The stream's frames end to end in workerd: running totals, ids 1..n, one terminal event, heartbeats, and GET and POST for each principal. */
import { afterEach, describe, expect, it, vi } from "vitest";
import { maxOutputTokens, usdToMicro } from "../../src/stream/cost";
import { MODELS } from "../../src/stream/models";
import { testEnv } from "../helpers/app";
import { fakeMessage } from "../helpers/gate";
import { openEvents, readEvents, type SseEvent } from "../helpers/sse";
import { pinClock } from "../helpers/stores";
import {
  type ChunkData,
  chunksOf,
  doneOf,
  expectedMicro,
  expectFraming,
  expectUpstreamRecord,
  startStream,
  supabaseUser,
} from "../helpers/stream";
import { anonToken } from "../helpers/tokens";

// pinClock stops the clock for a test; the next starts with the real one.
afterEach(() => {
  vi.useRealTimers();
});

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
    expect((await expectUpstreamRecord(id)).tokensSent).toBe(1);
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

    const record = await expectUpstreamRecord(id);
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
    // Exact hourly counts: no turn of the hour during the test.
    pinClock(3_600_000, 60_000);
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
