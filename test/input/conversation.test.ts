/**
 * @module Conversations on POST /api/v1/stream in workerd: the upstream receives the system
 * prompt and the history in order, and every cost bound covers the whole prompt.
 */
import { describe, expect, it } from "vitest";
import type { ErrorBody } from "../../src/errors";
import {
  costMicroUsd,
  inputTokensUpperBound,
  maxOutputTokens,
  usdToMicro,
} from "../../src/stream/cost";
import { MODELS } from "../../src/stream/models";
import type { PromptMessage } from "../../src/stream/prompt";
import { testEnv } from "../helpers/app";
import { doneOf, history, post } from "../helpers/conversation";
import { anonCaller, expectNothingSpent, fakeMessage, upstreamRecord } from "../helpers/gate";
import { readEvents } from "../helpers/sse";

describe("a conversation", () => {
  it("reaches the upstream as the system prompt, then every turn in order", async () => {
    const who = await anonCaller();
    const system = "You are terse. Answer in English.";
    const { id, messages } = history();
    const { res, settled } = await post(who, { messages }, testEnv({ SYSTEM_PROMPT: system }));
    expect(res.status).toBe(200);
    expect(doneOf(await readEvents(res)).finish_reason).toBe("stop");
    await settled();
    const seen = await upstreamRecord(id);
    expect(seen?.messages).toEqual([{ role: "system", content: system }, ...messages]);
  });

  it("sends no system message when the operator set none, and one message as one user turn", async () => {
    const who = await anonCaller();
    const { id, message } = fakeMessage();
    const { res, settled } = await post(who, { message });
    await readEvents(res);
    await settled();
    expect((await upstreamRecord(id))?.messages).toEqual([{ role: "user", content: message }]);
  });

  it("derives max_tokens from the whole prompt: system prompt, every turn and their framing", async () => {
    const who = await anonCaller();
    const system = "S".repeat(4000);
    const cap = 0.02;
    const { id, messages } = history({ tokens: 2 });
    const bindings = testEnv({ SYSTEM_PROMPT: system });
    const { res, settled } = await post(
      who,
      { messages, model: "gpt-4o", cost_cap_usd: cap },
      bindings,
    );
    expect(res.status).toBe(200);
    await readEvents(res);
    await settled();
    const prompt: PromptMessage[] = [{ role: "system", content: system }, ...messages];
    const expected = maxOutputTokens(MODELS["gpt-4o"], prompt, usdToMicro(cap));
    const seen = await upstreamRecord(id);
    expect(seen?.maxTokens).toBe(expected);
    // Smaller than what the last message alone would allow: the rest of the prompt counts.
    const lastOnly = maxOutputTokens(MODELS["gpt-4o"], messages.slice(-1), usdToMicro(cap));
    expect(expected).toBeLessThan(lastOnly - 400);
    // Worst case (every byte a token, 8 framing tokens per message): still within the cap.
    let bytes = 0;
    for (const m of prompt) bytes += new TextEncoder().encode(m.content).byteLength + 8;
    expect(inputTokensUpperBound(prompt)).toBe(bytes);
    expect(costMicroUsd(MODELS["gpt-4o"], bytes, expected)).toBeLessThanOrEqual(usdToMicro(cap));
  });

  it("bounds input over the whole prompt when the upstream sends no usage", async () => {
    const who = await anonCaller();
    const system = "Be brief.";
    const { messages } = history({ usage: 0, tokens: 3 });
    const { res, settled } = await post(who, { messages }, testEnv({ SYSTEM_PROMPT: system }));
    const done = doneOf(await readEvents(res));
    await settled();
    const prompt: PromptMessage[] = [{ role: "system", content: system }, ...messages];
    expect(done.usage_source).toBe("estimated");
    expect(done.input_tokens).toBe(inputTokensUpperBound(prompt));
    expect(done.input_tokens).toBeGreaterThan(inputTokensUpperBound(messages.slice(-1)) + 16);
  });

  it("refuses a cap the whole prompt cannot fit under, though the last message alone would", async () => {
    const who = await anonCaller();
    const long = "é".repeat(8000); // 16000 UTF-8 bytes
    const { id, message } = fakeMessage();
    const messages = [
      { role: "user", content: long },
      { role: "assistant", content: long },
      { role: "user", content: message },
    ];
    const cap = 0.03; // gpt-4o: 16000 bytes x 2 at 2.5 µUSD/token is 80000 µUSD
    const micro = usdToMicro(cap);
    expect(
      maxOutputTokens(MODELS["gpt-4o"], messages.slice(-1) as PromptMessage[], micro),
    ).toBeGreaterThan(0);
    const { res, settled } = await post(who, { messages, model: "gpt-4o", cost_cap_usd: cap });
    expect(res.status).toBe(422);
    expect(((await res.json()) as ErrorBody).fields).toEqual(["cost_cap_usd"]);
    await settled();
    expect(await upstreamRecord(id)).toBeNull();
    await expectNothingSpent(who);
  });
});

/** Bad conversations: the body (with a directive in a user turn) and the fields named. */
