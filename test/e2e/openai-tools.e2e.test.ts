/**
 * @module Tools, JSON output and images through the gateway with real clients in Node: the
 * official `openai` SDK and the AI SDK's multi-step tool loop (`streamText` with tools), against
 * the real worker under `wrangler dev`, whose upstream is the fake OpenAI server of test/support
 * streaming tool calls as OpenAI's recorded streams do.
 */
import { randomBytes } from "node:crypto";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { jsonSchema, stepCountIs, streamText, tool } from "ai";
import OpenAI, { BadRequestError } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeUpstream, startFakeUpstream } from "../support/fake-upstream";
import { type DevServer, startWranglerDev } from "./dev-server";

let server: DevServer;
let upstream: FakeUpstream;

beforeAll(async () => {
  upstream = await startFakeUpstream();
  server = await startWranglerDev({
    SECRET_KEY: randomBytes(32).toString("base64url"),
    OPENAI_API_KEY: "sk-test",
    OPENAI_BASE_URL: `${upstream.url}/v1`,
    ANON_MODELS: "gpt-4o-mini",
    ANON_SESSIONS_PER_IP_HOURLY: "100",
    RATE_LIMIT_IP: "1000/30s",
    MAX_BODY_BYTES: String(1024 * 1024),
  });
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await upstream?.close();
});

async function mint(): Promise<string> {
  const res = await fetch(`${server.url}/api/v1/anon_session`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: "{}",
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
}

const openai = async () =>
  new OpenAI({ apiKey: await mint(), baseURL: `${server.url}/v1`, maxRetries: 0 });

const WEATHER: OpenAI.ChatCompletionTool = {
  type: "function",
  function: {
    name: "get_weather",
    parameters: {
      type: "object",
      properties: { location: { type: "string" } },
      required: ["location"],
    },
  },
};

describe("the official openai SDK with tools, JSON and images", () => {
  it("streams parallel tool calls that the SDK reassembles", async () => {
    const client = await openai();
    const stream = client.chat.completions.stream({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "Weather? [[fake calls=2 piece=4]]" }],
      tools: [WEATHER],
    });
    const final = await stream.finalChatCompletion();
    const choice = final.choices[0];
    expect(choice?.finish_reason).toBe("tool_calls");
    const calls = choice?.message.tool_calls ?? [];
    expect(calls.map((c) => c.id)).toEqual(["call_fake0", "call_fake1"]);
    for (const c of calls) {
      expect(c.type === "function" && c.function).toMatchObject({
        name: "get_weather",
        arguments: '{"location":"Tokyo"}',
      });
    }
  });

  it("answers tool calls without streaming, then the second turn with the tool result", async () => {
    const client = await openai();
    const messages: OpenAI.ChatCompletionMessageParam[] = [
      { role: "user", content: "Weather? [[fake calls=1 tokens=2]]" },
    ];
    const first = await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages,
      tools: [WEATHER],
      tool_choice: "required",
    });
    const message = first.choices[0]?.message;
    expect(first.choices[0]?.finish_reason).toBe("tool_calls");
    const call = message?.tool_calls?.[0];
    expect(call?.id).toBe("call_fake0");
    messages.push(message as OpenAI.ChatCompletionMessageParam);
    messages.push({ role: "tool", tool_call_id: call?.id ?? "", content: "22 C" });
    const second = await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages,
      tools: [WEATHER],
    });
    expect(second.choices[0]?.message.content).toBe("tok tok");
    expect(second.choices[0]?.finish_reason).toBe("stop");
  });

  it("passes JSON output through, and an image as a data URL", async () => {
    const client = await openai();
    const png = Buffer.from(
      "89504e470d0a1a0a0000000d4948445200000010000000100802000000",
      "hex",
    ).toString("base64");
    const answer = await client.chat.completions.create({
      model: "gpt-4o-mini",
      response_format: { type: "json_object" },
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "Describe as JSON [[fake tokens=1]]" },
            {
              type: "image_url",
              image_url: { url: `data:image/png;base64,${png}`, detail: "low" },
            },
          ],
        },
      ],
    });
    expect(answer.choices[0]?.finish_reason).toBe("stop");
  });

  it("gets a BadRequestError naming the param for audio output", async () => {
    const client = await openai();
    const error = await client.chat.completions
      .create({
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: "Speak" }],
        modalities: ["text", "audio"],
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BadRequestError);
    expect((error as BadRequestError).param).toBe("modalities");
  });
});

describe("the AI SDK's tool loop", () => {
  it("streamText with tools runs a call, its result and the answer through the gateway", async () => {
    const provider = createOpenAICompatible({
      name: "magic-box",
      baseURL: `${server.url}/v1`,
      apiKey: await mint(),
      includeUsage: true,
    });
    const calls: unknown[] = [];
    const result = streamText({
      model: provider("gpt-4o-mini"),
      prompt: "What is the weather in Tokyo? [[fake calls=1 tokens=3]]",
      tools: {
        get_weather: tool({
          description: "The weather in a city",
          inputSchema: jsonSchema<{ location: string }>({
            type: "object",
            properties: { location: { type: "string" } },
            required: ["location"],
          }),
          execute: async (input) => {
            calls.push(input);
            return { celsius: 22 };
          },
        }),
      },
      stopWhen: stepCountIs(3),
      maxRetries: 0,
    });
    let text = "";
    for await (const part of result.textStream) text += part;
    const steps = await result.steps;
    expect(calls).toEqual([{ location: "Tokyo" }]);
    expect(steps).toHaveLength(2);
    expect(steps[0]?.finishReason).toBe("tool-calls");
    expect(text).toBe("tok tok tok");
    expect(await result.finishReason).toBe("stop");
  });
});
