/** @module workers-ai targets through the AI binding. */
import { describe, expect, it } from "vitest";
import type { ErrorBody } from "../../../src/errors";
import type { DoneData } from "../../../src/stream/frames";
import type { AiBinding } from "../../../src/stream/registry";
import { json } from "../../helpers/app";
import { anonCaller, postAs } from "../../helpers/gate";
import { A, env } from "../../helpers/providers";
import { readEvents } from "../../helpers/sse";

const WORKERS_AI_RECORDING = [
  'data: {"response":"New"}\n\n',
  'data: {"response":" York"}\n\n',
  'data: {"response":" is"}\n\n',
  'data: {"response":" located"}\n\n',
  'data: {"response":" in"}\n\n',
  'data: {"response":" the"}\n\n',
  'data: {"response":"","usage":{"prompt_tokens":18,"completion_tokens":6,"total_tokens":24}}\n\n',
  "data: [DONE]\n\n",
];

/** A fake `AI` binding: records each call, answers the recording (or throws `fail`). */
function fakeAi(
  fail?: Error,
): AiBinding & { calls: { model: string; inputs: Record<string, unknown> }[] } {
  const calls: { model: string; inputs: Record<string, unknown> }[] = [];
  return {
    calls,
    async run(model, inputs) {
      calls.push({ model, inputs });
      if (fail) throw fail;
      const bytes = new TextEncoder();
      return new ReadableStream<Uint8Array>({
        start(c) {
          for (const chunk of WORKERS_AI_RECORDING) c.enqueue(bytes.encode(chunk));
          c.close();
        },
      });
    },
  };
}

describe("workers-ai targets through the AI binding", () => {
  const groqThenCf = (ai: AiBinding) =>
    env({
      PROVIDERS: JSON.stringify({
        groq: { type: "openai", base_url: `${A}/v1`, api_keys: ["GROQ_API_KEY"] },
        cf: { type: "workers-ai" },
      }),
      MODELS: JSON.stringify({
        "llama-3.3-70b": {
          route: [
            {
              provider: "groq",
              model: "llama-3.3-70b-versatile",
              input_usd_per_million: 0.59,
              output_usd_per_million: 0.79,
            },
            {
              provider: "cf",
              model: "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
              input_usd_per_million: 0.29,
              output_usd_per_million: 2.25,
            },
          ],
        },
      }),
      ANON_MODELS: "llama-3.3-70b",
      GROQ_API_KEY: "gsk-test",
      AI: ai,
      // A fake AI binding lives in the test, not in a stream owner: the direct path.
      STREAM_RESUME_TTL_S: "0",
    });

  it("falls back from Groq to Workers AI and streams the recorded answer with its usage", async () => {
    const ai = fakeAi();
    const who = await anonCaller();
    const message = "where is new york? [[fake a.status=503]]";
    const { res, settled } = await postAs(
      who,
      "/api/v1/stream",
      { message, model: "llama-3.3-70b" },
      groqThenCf(ai),
    );
    const events = await readEvents(res);
    await settled();
    const chunks = events.filter((e) => e.event === "message_chunk").map((e) => e.data.content);
    expect(chunks.join("")).toBe("New York is located in the");
    const done = events.at(-1)?.data as unknown as DoneData;
    expect(done).toMatchObject({
      provider: "cf",
      upstream_model: "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
      input_tokens: 18,
      output_tokens: 6,
      usage_source: "upstream",
      cost_usd: Math.ceil(18 * 0.29 + 6 * 2.25) / 1e6,
    });
    expect(ai.calls).toHaveLength(1);
    expect(ai.calls[0]?.model).toBe("@cf/meta/llama-3.3-70b-instruct-fp8-fast");
    expect(ai.calls[0]?.inputs).toMatchObject({
      stream: true,
      messages: [{ role: "user", content: message }],
    });
    expect(ai.calls[0]?.inputs.max_tokens).toBeGreaterThan(0);
  });

  it("counts a capacity error of the binding as busy: 503 upstream_busy when it was the last", async () => {
    const who = await anonCaller();
    const ai = fakeAi(new Error("3040: Capacity temporarily exceeded, please try again."));
    const { res, settled } = await postAs(
      who,
      "/api/v1/stream",
      { message: "x [[fake a.status=500]]", model: "llama-3.3-70b" },
      groqThenCf(ai),
    );
    expect(res.status).toBe(503);
    expect((await json<ErrorBody>(res)).error_code).toBe("upstream_busy");
    await settled();
  });
});
