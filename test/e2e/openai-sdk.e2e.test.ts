/**
 * @module The OpenAI-compatible surface driven by real clients in Node: the official `openai`
 * SDK and the AI SDK (`ai` + `@ai-sdk/openai-compatible`), against the real worker under
 * `wrangler dev`, whose upstream is the fake OpenAI server of test/support.
 */
import { randomBytes } from "node:crypto";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { generateText, streamText } from "ai";
import OpenAI, {
  AuthenticationError,
  BadRequestError,
  NotFoundError,
  RateLimitError,
} from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeUpstream, startFakeUpstream } from "../support/fake-upstream";
import { type DevServer, type LogLine, startWranglerDev } from "./dev-server";

/** Streams each anonymous token may run in all: the quota test spends it. */
const QUOTA_TOTAL = 3;

let server: DevServer;
let upstream: FakeUpstream;

beforeAll(async () => {
  upstream = await startFakeUpstream();
  server = await startWranglerDev({
    SECRET_KEY: randomBytes(32).toString("base64url"),
    OPENAI_API_KEY: "sk-test",
    OPENAI_BASE_URL: `${upstream.url}/v1`,
    ANON_QUOTA_TOTAL: String(QUOTA_TOTAL),
    ANON_MODELS: "gpt-4o-mini,o4-mini",
    ANON_SESSIONS_PER_IP_HOURLY: "100",
    RATE_LIMIT_IP: "1000/30s",
  });
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await upstream?.close();
});

/** A fresh anonymous session token, minted by the gateway itself. */
async function mint(): Promise<string> {
  const res = await fetch(`${server.url}/api/v1/anon_session`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: "{}",
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
}

/** The official SDK with a gateway token as its API key. */
const openai = (apiKey: string) => new OpenAI({ apiKey, baseURL: `${server.url}/v1` });

/** The worker's access-log lines for the chat-completions route. */
const chatLines = (): LogLine[] =>
  server.logLines().filter((l) => l.event === "request" && l.route === "/v1/chat/completions");

/** Waits until the worker has logged the request `requestId` (wrangler forwards stdout a little later). */
async function loggedRequest(requestId: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (chatLines().some((l) => l.request_id === requestId)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the worker never logged request ${requestId}`);
}

describe("the official openai SDK", () => {
  it("streams with usage, and surfaces the request id", async () => {
    const client = openai(await mint());
    const { data: stream, request_id } = await client.chat.completions
      .create({
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: "Hello [[fake tokens=4]]" }],
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    let text = "";
    let usage: OpenAI.CompletionUsage | null | undefined;
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe("tok tok tok tok");
    expect(finish).toBe("stop");
    expect(usage?.completion_tokens).toBe(4);
    expect(usage?.total_tokens).toBe((usage?.prompt_tokens ?? 0) + 4);
    expect(request_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("answers without streaming, with usage and the request id", async () => {
    const client = openai(await mint());
    const completion = await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hi [[fake tokens=2]]" },
      ],
      max_tokens: 50,
    });
    expect(completion.object).toBe("chat.completion");
    expect(completion.choices[0]?.message).toMatchObject({ role: "assistant", content: "tok tok" });
    expect(completion.usage?.completion_tokens).toBe(2);
    expect(completion._request_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("throws AuthenticationError for a bad token", async () => {
    const error = await openai("not-a-token")
      .chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "x" }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthenticationError);
    expect(error).toMatchObject({
      status: 401,
      code: "unauthorized",
      type: "authentication_error",
    });
    expect((error as AuthenticationError).requestID).toBeTruthy();
  });

  it("throws BadRequestError naming an unsupported parameter", async () => {
    const error = await openai(await mint())
      .chat.completions.create({
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: "x" }],
        // Tools are supported now (issue 22); log probabilities are not.
        logprobs: true,
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BadRequestError);
    expect(error).toMatchObject({ status: 400, code: "invalid_input", param: "logprobs" });
  });

  it("throws NotFoundError model_not_found for an unknown model, as OpenAI's own API does", async () => {
    const error = await openai(await mint())
      .chat.completions.create({ model: "gpt-9", messages: [{ role: "user", content: "x" }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotFoundError);
    expect(error).toMatchObject({
      status: 404,
      code: "model_not_found",
      type: "invalid_request_error",
      param: "model",
    });
  });

  it("throws RateLimitError for a spent quota, once: the SDK does not retry it", async () => {
    const client = openai(await mint());
    const ask = () =>
      client.chat.completions.create({
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: "again [[fake tokens=1]]" }],
      });
    for (let i = 0; i < QUOTA_TOTAL; i++) await ask();
    const refusedBefore = chatLines().filter((l) => l.error_code === "quota_exceeded").length;
    const error = await ask().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitError);
    expect(error).toMatchObject({ status: 429, code: "quota_exceeded" });
    const requestId = (error as RateLimitError).requestID as string;
    // Every attempt the SDK made is logged before its error reached us; count them at the server.
    await loggedRequest(requestId);
    const refused = chatLines().filter((l) => l.error_code === "quota_exceeded");
    expect(refused.length - refusedBefore).toBe(1);
    expect(refused.at(-1)?.request_id).toBe(requestId);
  });
});

describe("the AI SDK with @ai-sdk/openai-compatible", () => {
  const provider = (apiKey: string) =>
    createOpenAICompatible({
      name: "magic-box",
      baseURL: `${server.url}/v1`,
      apiKey,
      includeUsage: true,
    });

  it("streamText streams the answer and reports usage", async () => {
    const result = streamText({
      model: provider(await mint())("gpt-4o-mini"),
      prompt: "Stream please [[fake tokens=3]]",
      maxRetries: 0,
    });
    let text = "";
    for await (const part of result.textStream) text += part;
    expect(text).toBe("tok tok tok");
    const usage = await result.usage;
    expect(usage.outputTokens).toBe(3);
    expect(usage.inputTokens).toBeGreaterThan(0);
    expect(await result.finishReason).toBe("stop");
  });

  it("generateText answers with usage, and reasoning apart from the text", async () => {
    const { text, usage, reasoningText } = await generateText({
      model: provider(await mint())("o4-mini"),
      system: "Think first.",
      prompt: "Generate please [[fake tokens=2 reasoning=2]]",
      maxRetries: 0,
    });
    expect(text).toBe("tok tok");
    expect(reasoningText).toBe("think think");
    expect(usage.outputTokens).toBe(4);
    expect(usage.inputTokens).toBeGreaterThan(0);
  });
});
