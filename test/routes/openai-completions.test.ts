/**
 * @module POST /v1/chat/completions streaming and not, and the prompt's bounds on the OpenAI
 * surface. Real SDK clients: test/e2e/openai-sdk.e2e.test.ts.
 */
import { describe, expect, it } from "vitest";
import { maxOutputTokens, usdToMicro } from "../../src/stream/cost";
import { MODELS } from "../../src/stream/models";
import { testEnv } from "../helpers/app";
import { anonCaller, fakeMessage, upstreamRecord } from "../helpers/gate";
import { complete, dataLines, type OpenAiError } from "../helpers/openai";

describe("POST /v1/chat/completions, streaming", () => {
  it("sends chat.completion.chunk objects, the usage chunk and [DONE]", async () => {
    const who = await anonCaller();
    const { id, message } = fakeMessage({ tokens: 3 });
    const { res, settled } = await complete(who, {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: message }],
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toBe("text/event-stream; charset=utf-8");
    const streamId = res.headers.get("X-Stream-Id");
    expect(res.headers.get("X-Request-Id")).toBeTruthy();
    const { data } = await dataLines(res);
    await settled();
    expect(data.at(-1)).toBe("[DONE]");
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    for (const c of chunks) {
      expect(c).toMatchObject({
        id: `chatcmpl-${streamId}`,
        object: "chat.completion.chunk",
        model: "gpt-4o-mini",
      });
      expect(typeof c.created).toBe("number");
    }
    const deltas = chunks.filter((c) => c.choices.length > 0);
    expect(deltas[0].choices[0].delta.role).toBe("assistant");
    expect(deltas.map((c) => c.choices[0].delta.content ?? "").join("")).toBe("tok tok tok");
    expect(deltas.at(-1).choices[0]).toEqual({ index: 0, delta: {}, finish_reason: "stop" });
    const last = chunks.at(-1);
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ completion_tokens: 3 });
    expect(last.usage.total_tokens).toBe(last.usage.prompt_tokens + 3);
    expect(last.usage.cost_usd).toBeGreaterThan(0);
    expect((await upstreamRecord(id))?.includeUsage).toBe(true);
  });

  it("sends no usage chunk unless asked, and heartbeats as comment lines", async () => {
    const who = await anonCaller();
    const { message } = fakeMessage({ tokens: 3, delay: 150 });
    const { res, settled } = await complete(
      who,
      { model: "gpt-4o-mini", messages: [{ role: "user", content: message }], stream: true },
      testEnv({ HEARTBEAT_INTERVAL_MS: "100" }),
    );
    const { data, comments } = await dataLines(res);
    await settled();
    expect(comments.length).toBeGreaterThan(0);
    expect(data.at(-1)).toBe("[DONE]");
    expect(data.slice(0, -1).every((d) => JSON.parse(d).choices.length === 1)).toBe(true);
  });

  it("reports a failure mid-stream as a data: {error} line", async () => {
    const who = await anonCaller();
    const { message } = fakeMessage({ tokens: 5, cut: 2, linger: 50 });
    const { res, settled } = await complete(who, {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: message }],
      stream: true,
    });
    expect(res.status).toBe(200);
    const { data } = await dataLines(res);
    await settled();
    expect(data).not.toContain("[DONE]");
    expect(JSON.parse(data.at(-1) as string)).toMatchObject({ error: { code: "upstream_error" } });
  });

  it("sends reasoning as reasoning_content deltas, never as content", async () => {
    const who = await anonCaller();
    const { message } = fakeMessage({ tokens: 2, reasoning: 2 });
    const { res } = await complete(who, {
      model: "o4-mini",
      messages: [{ role: "user", content: message }],
      stream: true,
    });
    const { data } = await dataLines(res);
    const deltas = data.slice(0, -1).map((d) => JSON.parse(d).choices[0].delta);
    expect(deltas.map((d) => d.reasoning_content ?? "").join("")).toBe("think think");
    expect(deltas.map((d) => d.content ?? "").join("")).toBe("tok tok");
  });
});

describe("POST /v1/chat/completions, not streaming", () => {
  it("answers one chat.completion with usage", async () => {
    const who = await anonCaller();
    const { message } = fakeMessage({ tokens: 4 });
    const { res, settled } = await complete(who, {
      model: "gpt-4.1-mini",
      messages: [{ role: "user", content: message }],
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toBe("application/json; charset=utf-8");
    const body = await res.json<Record<string, unknown>>();
    await settled();
    expect(body).toMatchObject({
      object: "chat.completion",
      model: "gpt-4.1-mini",
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: "tok tok tok tok" },
          finish_reason: "stop",
        },
      ],
      usage: { completion_tokens: 4 },
    });
    expect(body.id).toBe(`chatcmpl-${res.headers.get("X-Stream-Id")}`);
  });

  it("answers an upstream failure with its status, not a 200", async () => {
    const who = await anonCaller();
    const { message } = fakeMessage({ tokens: 5, cut: 2, linger: 50 });
    const { res, settled } = await complete(who, {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: message }],
    });
    expect(res.status).toBe(502);
    expect((await res.json<OpenAiError>()).error).toMatchObject({
      code: "upstream_error",
      type: "server_error",
    });
    await settled();
  });

  it("says length when the cost cap stopped the answer", async () => {
    const who = await anonCaller();
    const { message } = fakeMessage({ tokens: 400, ignoremax: 1, usage: 0 });
    const { res } = await complete(who, {
      model: "gpt-4o",
      messages: [{ role: "user", content: message }],
      cost_cap_usd: 0.002,
    });
    const body = await res.json<{ choices: { finish_reason: string }[] }>();
    expect(body.choices[0]?.finish_reason).toBe("length");
  });
});

describe("the prompt and its bounds", () => {
  it("places client system and developer messages after SYSTEM_PROMPT, as system", async () => {
    const who = await anonCaller();
    const { id, message } = fakeMessage();
    const { res, settled } = await complete(
      who,
      {
        model: "gpt-4o-mini",
        messages: [
          { role: "system", content: "Client rules." },
          { role: "developer", content: "Dev rules." },
          {
            role: "user",
            content: [
              { type: "text", text: "part one, " },
              { type: "text", text: "two" },
            ],
          },
          { role: "assistant", content: "ok" },
          { role: "user", content: message },
        ],
      },
      testEnv({ SYSTEM_PROMPT: "Operator rules." }),
    );
    expect(res.status).toBe(200);
    await res.text();
    await settled();
    expect((await upstreamRecord(id))?.messages).toEqual([
      { role: "system", content: "Operator rules." },
      { role: "system", content: "Client rules." },
      { role: "system", content: "Dev rules." },
      { role: "user", content: "part one, two" },
      { role: "assistant", content: "ok" },
      { role: "user", content: message },
    ]);
  });

  it("lowers max_tokens to what the cap allows, never raises it, and passes sampling on", async () => {
    const who = await anonCaller();
    const cap = 0.001;
    const prompt = (message: string) => [{ role: "user" as const, content: message }];
    const low = fakeMessage();
    await (
      await complete(who, {
        model: "gpt-4o",
        messages: prompt(low.message),
        max_tokens: 7,
        cost_cap_usd: cap,
        temperature: 0.3,
        top_p: 0.9,
        stop: ["\n\n"],
        seed: 4,
        presence_penalty: 0.5,
        frequency_penalty: -0.5,
        user: "u1",
        n: 1,
      })
    ).res.text();
    const high = fakeMessage();
    await (
      await complete(who, {
        model: "gpt-4o",
        messages: prompt(high.message),
        max_completion_tokens: 100_000,
        cost_cap_usd: cap,
      })
    ).res.text();
    const lowSeen = await upstreamRecord(low.id);
    expect(lowSeen?.maxTokens).toBe(7);
    expect(lowSeen?.params).toMatchObject({
      temperature: 0.3,
      top_p: 0.9,
      stop: ["\n\n"],
      seed: 4,
      presence_penalty: 0.5,
      frequency_penalty: -0.5,
    });
    expect(lowSeen?.params).not.toHaveProperty("user");
    const ceiling = maxOutputTokens(MODELS["gpt-4o"], prompt(high.message), usdToMicro(cap));
    expect(ceiling).toBeLessThan(100_000);
    expect((await upstreamRecord(high.id))?.maxTokens).toBe(ceiling);
  });
});
