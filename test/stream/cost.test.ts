/** @module What a stream costs end to end: exact prices, an upper bound without usage, the cost cap and the maximum duration. */
import { describe, expect, it } from "vitest";
import { inputTokensUpperBound, textTokensUpperBound } from "../../src/stream/cost";
import { testEnv } from "../helpers/app";
import { fakeMessage, ledgerOf, usageOfToken } from "../helpers/gate";
import { readEvents } from "../helpers/sse";
import {
  chunksOf,
  doneOf,
  expectedMicro,
  expectFraming,
  fakePromptTokens,
  pollUpstream,
  principalKey,
  startStream,
  supabaseUser,
} from "../helpers/stream";
import { anonToken } from "../helpers/tokens";

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
      expect((await usageOfToken(token)).spend.total_usd).toBe(micro / 1e6);
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
