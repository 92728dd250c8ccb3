/**
 * @module Tools and JSON output on the OpenAI surface against the fake upstream, which streams
 * function calls in the shape of OpenAI's recorded streams (see test/support/fake-upstream.ts):
 * streamed and buffered calls, parallel calls, the second turn with `tool` messages, what the
 * upstream is sent, and the money of tools in the hold and the record.
 */
import { encode } from "gpt-tokenizer/model/gpt-4o";
import { decodeJwt } from "jose";
import type { ChatCompletionChunk } from "openai/resources/chat/completions";
import { describe, expect, it } from "vitest";
import { inputTokensUpperBound, usdToMicro } from "../../src/stream/cost";
import { testEnv } from "../helpers/app";
import {
  anonCaller,
  expectNothingSpent,
  fakeMessage,
  ledgerOf,
  postAs,
  upstreamRecord,
  type Who,
} from "../helpers/gate";
import { anonToken } from "../helpers/tokens";

const complete = (who: Who, body: unknown, bindings = testEnv()) =>
  postAs(who, "/v1/chat/completions", body, bindings);

const WEATHER = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: {
      type: "object",
      properties: { location: { type: "string" } },
      required: ["location"],
    },
  },
};

/** base64url of the UTF-8 of `s` (what the fake's `*b64` directives read). */
const b64 = (s: string) =>
  btoa(String.fromCharCode(...new TextEncoder().encode(s)))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");

/** The parsed `data:` chunks of a stream, without `[DONE]`. */
async function chunksOf(res: Response) {
  const text = await res.text();
  const data = text
    .split("\n")
    .filter((l) => l.startsWith("data: "))
    .map((l) => l.slice(6));
  expect(data.at(-1)).toBe("[DONE]");
  return data.slice(0, -1).map((d) => JSON.parse(d) as ChatCompletionChunk);
}

describe("function calls on the OpenAI surface", () => {
  it("streams one call as delta.tool_calls and finishes with tool_calls", async () => {
    const who = await anonCaller();
    const { id, message } = fakeMessage({ calls: 1 }, "Weather in Tokyo?");
    const { res, settled } = await complete(who, {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: message }],
      tools: [WEATHER],
      tool_choice: "auto",
      parallel_tool_calls: false,
      stream: true,
    });
    expect(res.status).toBe(200);
    const chunks = await chunksOf(res);
    await settled();
    const pieces = chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? []);
    expect(pieces[0]).toEqual({
      index: 0,
      id: "call_fake0",
      type: "function",
      function: { name: "get_weather", arguments: "" },
    });
    expect(pieces.map((p) => p.function?.arguments).join("")).toBe('{"location":"Tokyo"}');
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe("tool_calls");
    const seen = await upstreamRecord(id);
    expect(seen?.params).toMatchObject({
      tools: [WEATHER],
      tool_choice: "auto",
      parallel_tool_calls: false,
    });
  });

  it("streams parallel calls by index", async () => {
    const who = await anonCaller();
    const { message } = fakeMessage({ calls: 3, piece: 3 });
    const { res, settled } = await complete(who, {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: message }],
      tools: [WEATHER],
      stream: true,
    });
    const chunks = await chunksOf(res);
    await settled();
    const pieces = chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? []);
    for (const i of [0, 1, 2]) {
      const mine = pieces.filter((p) => p.index === i);
      expect(mine[0]?.id).toBe(`call_fake${i}`);
      expect(mine.map((p) => p.function?.arguments).join("")).toBe('{"location":"Tokyo"}');
    }
  });

  it("answers message.tool_calls without stream, content null", async () => {
    const who = await anonCaller();
    const { message } = fakeMessage({ calls: 2 });
    const { res, settled } = await complete(who, {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: message }],
      tools: [WEATHER],
    });
    expect(res.status).toBe(200);
    const body = await res.json<{
      choices: { message: Record<string, unknown>; finish_reason: string }[];
    }>();
    await settled();
    expect(body.choices[0]?.finish_reason).toBe("tool_calls");
    expect(body.choices[0]?.message).toEqual({
      role: "assistant",
      content: null,
      tool_calls: [0, 1].map((i) => ({
        id: `call_fake${i}`,
        type: "function",
        function: { name: "get_weather", arguments: '{"location":"Tokyo"}' },
      })),
    });
  });

  it("passes a second turn's tool calls and tool results to the upstream", async () => {
    const who = await anonCaller();
    const { id, message } = fakeMessage({ calls: 1, tokens: 2 });
    const call = {
      id: "call_fake0",
      type: "function",
      function: { name: "get_weather", arguments: '{"location":"Tokyo"}' },
    };
    const { res, settled } = await complete(who, {
      model: "gpt-4o-mini",
      messages: [
        { role: "user", content: message },
        { role: "assistant", content: null, tool_calls: [call] },
        { role: "tool", tool_call_id: "call_fake0", content: "22 C, sunny" },
      ],
      tools: [WEATHER],
    });
    expect(res.status).toBe(200);
    const body = await res.json<{ choices: { message: { content: string } }[] }>();
    await settled();
    expect(body.choices[0]?.message.content).toBe("tok tok");
    const seen = await upstreamRecord(id);
    expect(seen?.messages.slice(-2)).toEqual([
      { role: "assistant", content: null, tool_calls: [call] },
      { role: "tool", content: "22 C, sunny", tool_call_id: "call_fake0" },
    ]);
  });

  it("passes response_format to openai targets", async () => {
    const who = await anonCaller();
    const { id, message } = fakeMessage({ textb64: b64('{"ok":true}'), tokens: 1 });
    const format = {
      type: "json_schema",
      json_schema: { name: "answer", schema: { type: "object" }, strict: true },
    };
    const { res, settled } = await complete(who, {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: message }],
      response_format: format,
    });
    expect(res.status).toBe(200);
    await settled();
    expect((await upstreamRecord(id))?.params.response_format).toEqual(format);
  });
});

describe("the money of tools", () => {
  it("holds the tool definitions: a cap that pays for the text but not the tools refuses, spending nothing", async () => {
    const who = await anonCaller();
    const { id, message } = fakeMessage({ calls: 1 });
    const big = {
      ...WEATHER,
      function: { ...WEATHER.function, description: "x".repeat(20_000) },
    };
    // gpt-4o-mini input: $0.15 per million: 20k bytes of tools cost 3000+ µUSD; the cap is 2000.
    const { res, settled } = await complete(who, {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: message }],
      tools: [big],
      cost_cap_usd: 0.002,
    });
    expect(res.status).toBe(400);
    expect((await res.json<{ error: { param: string } }>()).error.param).toBe("cost_cap_usd");
    await settled();
    expect(await upstreamRecord(id)).toBeNull();
    await expectNothingSpent(who);
    // The same request without the tools fits.
    expect(inputTokensUpperBound([{ role: "user", content: message }])).toBeLessThan(
      usdToMicro(0.002) / 0.15,
    );
  });

  it("holds the tools against the budgets too: a budget that fits the text but not the tools refuses, spending nothing", async () => {
    const who = await anonCaller();
    const bindings = testEnv({ BUDGET_ANON_DAILY_USD: "0.003" });
    const { id, message } = fakeMessage({ calls: 1 });
    const big = { ...WEATHER, function: { ...WEATHER.function, description: "x".repeat(20_000) } };
    const { res, settled } = await complete(
      who,
      { model: "gpt-4o-mini", messages: [{ role: "user", content: message }], tools: [big] },
      bindings,
    );
    expect(res.status).toBe(429);
    expect((await res.json<{ error: { code: string } }>()).error.code).toBe("budget_exceeded");
    await settled();
    expect(await upstreamRecord(id)).toBeNull();
    await expectNothingSpent(who, bindings);
    const text = await complete(
      who,
      { model: "gpt-4o-mini", messages: [{ role: "user", content: fakeMessage().message }] },
      bindings,
    );
    expect(text.res.status).toBe(200);
    await text.res.text();
    await text.settled();
  });

  it.each([
    ["whitespace", `{"q":"${" \t\n ".repeat(200)}"}`],
    ["emoji", `{"q":"${"🦄👩‍👩‍👧‍👦".repeat(60)}"}`],
  ])(
    "records at least the o200k tokens of %s arguments cut mid-call, without usage",
    async (_name, args) => {
      const token = await anonToken();
      const who = { token, ip: "203.0.113.77" };
      const cutAt = Math.floor(Array.from(args).length / 5 / 2);
      const { message } = fakeMessage({
        calls: 1,
        argsb64: b64(args),
        cut: cutAt,
        linger: 50,
        usage: 0,
      });
      const { res, settled } = await complete(who, {
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: message }],
        tools: [WEATHER],
        stream: true,
      });
      const chunks = (await res.text())
        .split("\n")
        .filter((l) => l.startsWith("data: {") && l.includes("tool_calls"))
        .map((l) => JSON.parse(l.slice(6)));
      await settled();
      const served = chunks
        .flatMap((c) => c.choices?.[0]?.delta?.tool_calls ?? [])
        .map((p: { function: { name?: string; arguments: string } }) => {
          return (p.function.name ?? "") + p.function.arguments;
        })
        .join("");
      expect(served.length).toBeGreaterThan(0);
      const [record] = await ledgerOf(`anonymous:${decodeJwt(token).sub}`);
      expect(record?.usageSource).toBe("estimated");
      expect(record?.outputTokens).toBeGreaterThanOrEqual(encode(served).length);
    },
  );
});
