/**
 * @module Pure units of the conversation and OpenAI pieces: reasoning kept apart from the
 * answer in every upstream dialect, the prompt's bounds, and the OpenAI encoders.
 */
import { describe, expect, it } from "vitest";
import type { StreamRequest } from "../../src/input/request";
import { inputTokensUpperBound, maxOutputTokens, usdToMicro } from "../../src/stream/cost";
import type { DoneData, Frame } from "../../src/stream/frames";
import { MODELS } from "../../src/stream/models";
import { openAiChunks, openAiCompletion } from "../../src/stream/openai-wire";
import { buildPrompt } from "../../src/stream/prompt";
import { chatChunkEvents } from "../../src/stream/providers/openai";

const chunk = (delta: unknown) => JSON.stringify({ choices: [{ index: 0, delta }] });

describe("chatChunkEvents", () => {
  it("keeps reasoning_content, reasoning and Mistral thinking parts out of the answer", () => {
    expect(chatChunkEvents(chunk({ reasoning_content: "r1", content: "a1" }))).toEqual([
      { type: "reasoning", text: "r1" },
      { type: "delta", text: "a1" },
    ]);
    expect(chatChunkEvents(chunk({ reasoning: "r2" }))).toEqual([
      { type: "reasoning", text: "r2" },
    ]);
    expect(
      chatChunkEvents(
        chunk({
          content: [
            {
              type: "thinking",
              thinking: [
                { type: "text", text: "hm" },
                { type: "text", text: "m" },
              ],
            },
            { type: "text", text: "answer" },
            { type: "image_url", image_url: "x" },
          ],
        }),
      ),
    ).toEqual([
      { type: "reasoning", text: "hmm" },
      { type: "delta", text: "answer" },
    ]);
  });

  it("ignores empty and non-string reasoning", () => {
    expect(chatChunkEvents(chunk({ reasoning_content: "", reasoning: 5, content: null }))).toEqual(
      [],
    );
    expect(chatChunkEvents(chunk({ content: [{ type: "thinking", thinking: 7 }, null] }))).toEqual(
      [],
    );
  });
});

describe("the prompt's bounds", () => {
  const prompt = buildPrompt("sys", [
    { role: "user", content: "é" },
    { role: "assistant", content: "ok" },
  ]);

  it("puts the system prompt first, and none when it is unset", () => {
    expect(prompt.map((m) => m.role)).toEqual(["system", "user", "assistant"]);
    expect(buildPrompt(undefined, [{ role: "user", content: "x" }])).toEqual([
      { role: "user", content: "x" },
    ]);
  });

  it("counts every message's bytes and framing", () => {
    expect(inputTokensUpperBound(prompt)).toBe(3 + 2 + 2 + 3 * 8);
  });

  it("lets a client's max_tokens lower the derived bound, never raise it", () => {
    const model = MODELS["gpt-4o-mini"];
    const cap = usdToMicro(0.001);
    const free = maxOutputTokens(model, prompt, cap);
    expect(maxOutputTokens(model, prompt, cap, 10)).toBe(10);
    expect(maxOutputTokens(model, prompt, cap, free + 1000)).toBe(free);
  });

  it("converts USD to µUSD without float drift", () => {
    expect(usdToMicro(0.29)).toBe(290_000);
    expect(usdToMicro(0.000001)).toBe(1);
    expect(usdToMicro(0.0000019)).toBe(1);
  });
});

const request = {
  model: MODELS["o4-mini"],
  prompt: [],
  streamId: "s1",
  capMicroUsd: 1,
  maxTokens: null,
  sampling: {},
} satisfies StreamRequest;

const done: DoneData = {
  stream_id: "s1",
  model: "o4-mini",
  provider: "openai",
  upstream_model: "o4-mini",
  input_tokens: 10,
  output_tokens: 4,
  cost_usd: 0.000029,
  ttft_ms: 1,
  duration_ms: 2,
  finish_reason: "cost_cap",
  usage_source: "upstream",
};

const frames: Frame[] = [
  { event: "reasoning_chunk", data: { content: "hmm" } },
  { event: "heartbeat", data: { ts: 1 } },
  {
    event: "message_chunk",
    data: { content: 'a "quoted"\n\ndata: [DONE]', output_tokens: 3, cost_usd: 0 },
  },
  { event: "done", data: done },
];

const text = (bytes: Uint8Array | null) => new TextDecoder().decode(bytes ?? new Uint8Array());

describe("the OpenAI encoders", () => {
  it("write chunks whose data lines hold any model text, then usage and [DONE]", () => {
    const out = text(openAiChunks(true).encoder(request, 5_000)(frames));
    const events = out.split("\n\n").filter(Boolean);
    expect(events[1]).toBe(": keep-alive");
    const data = events.filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));
    expect(data.at(-1)).toBe("[DONE]");
    const objects = data.slice(0, -1).map((d) => JSON.parse(d));
    expect(objects[0]).toEqual({
      id: "chatcmpl-s1",
      object: "chat.completion.chunk",
      created: 5,
      model: "o4-mini",
      choices: [
        { index: 0, delta: { role: "assistant", reasoning_content: "hmm" }, finish_reason: null },
      ],
    });
    expect(objects[1].choices[0].delta).toEqual({ content: 'a "quoted"\n\ndata: [DONE]' });
    expect(objects[2].choices[0]).toEqual({ index: 0, delta: {}, finish_reason: "length" });
    expect(objects[3]).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 10, completion_tokens: 4, total_tokens: 14, cost_usd: 0.000029 },
    });
  });

  it("write one chat.completion only at the end", () => {
    const encode = openAiCompletion.encoder(request, 5_000);
    expect(encode(frames.slice(0, 3))).toBeNull();
    expect(JSON.parse(text(encode(frames.slice(3))))).toEqual({
      id: "chatcmpl-s1",
      object: "chat.completion",
      created: 5,
      model: "o4-mini",
      choices: [
        {
          index: 0,
          message: {
            role: "assistant",
            content: 'a "quoted"\n\ndata: [DONE]',
            reasoning_content: "hmm",
          },
          finish_reason: "length",
          logprobs: null,
        },
      ],
      usage: { prompt_tokens: 10, completion_tokens: 4, total_tokens: 14, cost_usd: 0.000029 },
    });
  });
});
