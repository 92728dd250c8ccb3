/** @module Pure units of src/stream: SSE encoding, cost arithmetic and the meter. */
import { describe, expect, it } from "vitest";
import {
  costMicroUsd,
  inputTokensUpperBound,
  maxOutputTokens,
  usdToMicro,
} from "../../src/stream/cost";
import { type Frame, frameEncoder } from "../../src/stream/frames";
import { createMeter, newMeterState } from "../../src/stream/meter";
import { MODEL_IDS, MODELS } from "../../src/stream/models";
import type { UpstreamEvent } from "../../src/stream/providers/provider";
import { readEvents } from "../helpers/sse";
import { doneData, exactMicro, mini, user } from "../helpers/stubs";

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
