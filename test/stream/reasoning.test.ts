/** @module Reasoning models: reasoning_chunk frames, and their tokens metered as output. */
import { describe, expect, it } from "vitest";
import { costMicroUsd, estimateTokens, inputTokensUpperBound } from "../../src/stream/cost";
import { MODELS } from "../../src/stream/models";
import { doneOf, history, post } from "../helpers/conversation";
import { anonCaller, upstreamRecord, usageOf } from "../helpers/gate";
import { readEvents } from "../helpers/sse";

describe("reasoning", () => {
  it.each(["reasoning_content", "reasoning", "mistral"])(
    "from %s goes out as reasoning_chunk, never in message_chunk, and is billed as output",
    async (rfield) => {
      const who = await anonCaller();
      const { id, messages } = history({ reasoning: 3, tokens: 2, rfield, usage: 0 });
      const { res, settled } = await post(who, { messages, model: "o4-mini" });
      const events = await readEvents(res);
      await settled();
      const reasoning = events.filter((e) => e.event === "reasoning_chunk");
      const answer = events.filter((e) => e.event === "message_chunk");
      expect(reasoning.map((e) => e.data)).toEqual([
        { content: "think" },
        { content: " think" },
        { content: " think" },
      ]);
      expect(answer.map((e) => e.data.content).join("")).toBe("tok tok");
      const done = doneOf(events);
      // The running count covers the reasoning's tokens as output tokens...
      let output = 0;
      for (const e of [...reasoning, ...answer]) {
        output += Math.max(1, estimateTokens(e.data.content as string));
      }
      expect(output).toBeGreaterThan(answer.length);
      expect(answer.at(-1)?.data.output_tokens).toBe(output);
      // ...and without usage, a reasoning model is recorded at its max_completion_tokens: only
      // the final usage could say how much it thought without showing it.
      const seen = await upstreamRecord(id);
      expect(seen?.maxCompletionTokens).toBeGreaterThan(output);
      expect(done).toMatchObject({
        usage_source: "estimated",
        output_tokens: seen?.maxCompletionTokens,
      });
      expect(done.cost_usd).toBe(
        costMicroUsd(MODELS["o4-mini"], done.input_tokens as number, done.output_tokens as number) /
          1e6,
      );
      const u = await usageOf(who);
      expect(u.spend.total_usd).toBe(done.cost_usd);
    },
  );

  it("is stopped by the cost cap like any output", async () => {
    const who = await anonCaller();
    const { messages } = history({ reasoning: 50, tokens: 2, usage: 0, ignoremax: 1 });
    const model = MODELS["o4-mini"];
    // A cap that pays for the worst-case input and 40 output tokens; the meter counts the
    // input at that bound and the output by its running estimate.
    const capMicro = costMicroUsd(model, inputTokensUpperBound(messages), 40);
    let allowed = 0;
    while (costMicroUsd(model, inputTokensUpperBound(messages), allowed + 1) <= capMicro) allowed++;
    // Each piece ("think", " think") costs the estimator's count of it.
    const perPiece = estimateTokens(" think");
    expect(estimateTokens("think")).toBe(perPiece);
    const pieces = Math.floor(allowed / perPiece);
    expect(pieces).toBeGreaterThan(2);
    expect(pieces).toBeLessThan(50);
    const { res, settled } = await post(who, {
      messages,
      model: "o4-mini",
      cost_cap_usd: capMicro / 1e6,
    });
    expect(res.status).toBe(200);
    const events = await readEvents(res);
    await settled();
    expect(events.filter((e) => e.event === "reasoning_chunk")).toHaveLength(pieces);
    expect(events.filter((e) => e.event === "message_chunk")).toHaveLength(0);
    const done = doneOf(events);
    expect(done).toMatchObject({ finish_reason: "cost_cap", usage_source: "estimated" });
    // Recorded at no less than what was metered, and never more than the cap (the hold).
    expect(done.output_tokens).toBeGreaterThanOrEqual(pieces * perPiece);
    expect(done.cost_usd).toBeLessThanOrEqual(capMicro / 1e6);
  });
});
