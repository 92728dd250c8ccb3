/**
 * @module The demo provider: varied markdown answers chosen from the question, never more tokens
 * than `maxTokens`, and usage that is exact by its own count (so `done` says `upstream`), on
 * both surfaces.
 */
import { describe, expect, it } from "vitest";
import { inputTokensUpperBound } from "../../../src/stream/cost";
import type { DoneData } from "../../../src/stream/frames";
import { MODELS } from "../../../src/stream/models";
import type { PromptMessage } from "../../../src/stream/prompt";
import {
  demoAnswer,
  demoProvider,
  demoTokenCount,
  demoTokens,
} from "../../../src/stream/providers/demo";
import type { UpstreamEvent } from "../../../src/stream/providers/provider";
import { testEnv } from "../../helpers/app";
import { anonCaller, postAs } from "../../helpers/gate";
import { readEvents } from "../../helpers/sse";

/** Every event the demo sends for `message` under `maxTokens`, without delays. */
async function demoEvents(message: string, maxTokens: number, system?: string) {
  const prompt: PromptMessage[] = [
    ...(system ? [{ role: "system" as const, content: system }] : []),
    { role: "user", content: message },
  ];
  const { events } = await demoProvider(0).open({
    model: MODELS["gpt-4o-mini"],
    prompt,
    maxTokens,
    signal: new AbortController().signal,
  });
  const all: UpstreamEvent[] = [];
  for (let batch = await events.read(); batch !== null; batch = await events.read()) {
    all.push(...batch);
  }
  return { prompt, all };
}

const text = (message: string) => demoAnswer(message).join("");

describe("the demo provider's answers", () => {
  it("answers a question about a table with a markdown table", () => {
    expect(text("Compare the stores in a table")).toMatch(/\n\| --- \| --- \|/);
  });

  it("answers a question about code with fenced code blocks", () => {
    expect(text("Show me some code")).toMatch(/```sh\n[\s\S]+```[\s\S]+```ts\n[\s\S]+```$/);
  });

  it("answers a question about steps with a numbered list", () => {
    expect(text("What are the steps?")).toMatch(/\n\n1\. \*\*[\s\S]+\n5\. \*\*/);
  });

  it("answers anything else in plain prose that echoes the question and says what to ask for", () => {
    const answer = text("Say hello");
    expect(answer).toContain('You asked: "Say hello"');
    expect(answer).toContain("Ask for a list, a table or some code");
    expect(answer).not.toMatch(/\||```|\n\d\.|\*\*/);
  });

  it("is split into chunks that join back to the text, whatever the question holds", () => {
    for (const message of [
      "Say hello",
      "tables",
      "code",
      "list",
      "héllo 𝄞\r\n\tdone  ",
      "a\u00a0b",
    ]) {
      const chunks = demoAnswer(message);
      expect(chunks.every((c) => c.length > 0)).toBe(true);
      expect(demoTokens(chunks.join(""))).toEqual(chunks);
    }
    const odd = "x\r\n\ty  z\u00a0😀 42 1234 ---|";
    expect(demoTokens(odd).join("")).toBe(odd);
  });

  it("counts most chunks as one token", () => {
    const chunks = demoAnswer("Say hello");
    const ones = chunks.filter((c) => demoTokenCount(c) === 1).length;
    expect(ones / chunks.length).toBeGreaterThan(0.9);
  });
});

describe("the demo provider's stream", () => {
  it.each([1, 2, 5, 17, 100_000])(
    "never sends more than maxTokens = %i, and ends with exact usage",
    async (maxTokens) => {
      const message = "Compare them in a table";
      const { prompt, all } = await demoEvents(message, maxTokens, "Be brief.");
      const deltas = all.filter((e) => e.type === "delta");
      const sent = deltas.reduce((n, e) => n + demoTokenCount(e.text), 0);
      expect(sent).toBeLessThanOrEqual(maxTokens);
      // The last two events: usage (exact by the demo's own count), then the finish.
      const full = demoAnswer(message);
      const cut = deltas.length < full.length;
      expect(all.slice(-2)).toEqual([
        { type: "usage", inputTokens: inputTokensUpperBound(prompt), outputTokens: sent },
        { type: "finish", reason: cut ? "length" : "stop" },
      ]);
      expect(cut).toBe(maxTokens < 100_000);
      expect(deltas.map((e) => e.text)).toEqual(full.slice(0, deltas.length));
      // As many as fit: the next chunk would have passed maxTokens.
      if (cut)
        expect(sent + demoTokenCount(full[deltas.length] as string)).toBeGreaterThan(maxTokens);
    },
  );
});

describe("the demo behind the gateway", () => {
  const demoEnv = () => testEnv({ OPENAI_API_KEY: undefined });

  it("ends a native stream with done from upstream usage, matching the metered chunks", async () => {
    const who = await anonCaller();
    const message = "Give me a list of the steps";
    const { res, settled } = await postAs(who, "/api/v1/stream", { message }, demoEnv());
    expect(res.status).toBe(200);
    const events = await readEvents(res);
    await settled();
    const chunks = events
      .filter((e) => e.event === "message_chunk")
      .map((e) => e.data as { content: string; output_tokens: number });
    const done = events.find((e) => e.event === "done")?.data as unknown as DoneData;
    expect(chunks.map((c) => c.content).join("")).toBe(text(message));
    expect(done).toMatchObject({
      provider: "demo",
      finish_reason: "stop",
      usage_source: "upstream",
      input_tokens: inputTokensUpperBound([{ role: "user", content: message }]),
      output_tokens: chunks.at(-1)?.output_tokens,
    });
  });

  it("gives max_tokens: 5 on the OpenAI surface exactly 5 completion tokens, finish length", async () => {
    const who = await anonCaller();
    const { res, settled } = await postAs(
      who,
      "/v1/chat/completions",
      {
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: "Say hello" }],
        max_tokens: 5,
      },
      demoEnv(),
    );
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      choices: { message: { content: string }; finish_reason: string }[];
      usage: { prompt_tokens: number; completion_tokens: number };
    };
    await settled();
    const content = body.choices[0]?.message.content ?? "";
    expect(body.usage.completion_tokens).toBe(5);
    expect(demoTokens(content).reduce((n, c) => n + demoTokenCount(c), 0)).toBe(5);
    expect(text("Say hello").startsWith(content)).toBe(true);
    expect(body.choices[0]?.finish_reason).toBe("length");
  });
});
