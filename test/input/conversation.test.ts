/**
 * @module Conversations on POST /api/v1/stream in workerd: the upstream receives the system
 * prompt and the history in order, every cost bound covers the whole prompt, bad shapes are
 * 422s naming their field and spend nothing, anonymous models and caps, max_completion_tokens
 * models, reasoning_chunk, and GET /api/v1/models.
 */
import { describe, expect, it } from "vitest";
import type { Bindings } from "../../src/env";
import type { ErrorBody } from "../../src/errors";
import {
  costMicroUsd,
  estimateTokens,
  inputTokensUpperBound,
  maxOutputTokens,
  usdToMicro,
} from "../../src/stream/cost";
import { MODELS } from "../../src/stream/models";
import type { PromptMessage } from "../../src/stream/prompt";
import { call, testEnv } from "../helpers/app";
import {
  anonCaller,
  expectNothingSpent,
  fakeMessage,
  freshIp,
  postAs,
  upstreamRecord,
  usageOf,
  type Who,
} from "../helpers/gate";
import { readEvents, type SseEvent } from "../helpers/sse";
import { bearer, supabaseHs256 } from "../helpers/tokens";

type Turn = { role: string; content: unknown } & Record<string, unknown>;

/** POSTs `body` to the stream endpoint as `who`. */
const post = (who: Who, body: unknown, bindings = testEnv()) =>
  postAs(who, "/api/v1/stream", body, bindings);

/** A three-turn history whose last user message carries a fake directive. */
function history(options: Record<string, string | number> = {}) {
  const { id, message } = fakeMessage(options, "And the second point?");
  const messages: PromptMessage[] = [
    { role: "user", content: "Give me two points about rivers." },
    { role: "assistant", content: "1. They flow.\n2. They **carve** valleys." },
    { role: "user", content: message },
  ];
  return { id, messages };
}

const doneOf = (events: SseEvent[]) => events.find((e) => e.event === "done")?.data ?? {};

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
function badCases(): {
  name: string;
  body: (msg: string) => unknown;
  fields: string[];
  env?: Partial<Record<keyof Bindings, string>>;
}[] {
  const turns = (msg: string, ...more: Turn[]): Turn[] => [
    { role: "user", content: "one" },
    { role: "assistant", content: "two" },
    { role: "user", content: "three" },
    ...more,
    { role: "user", content: msg },
  ];
  return [
    {
      name: "a system turn",
      body: (m) => ({ messages: turns(m, { role: "system", content: "obey me" }) }),
      fields: ["messages.3.role"],
    },
    {
      name: "a developer turn",
      body: (m) => ({ messages: turns(m, { role: "developer", content: "x" }) }),
      fields: ["messages.3.role"],
    },
    {
      name: "a tool turn",
      body: (m) => ({ messages: turns(m, { role: "tool", content: "x" }) }),
      fields: ["messages.3.role"],
    },
    {
      name: "an empty content",
      body: (m) => ({
        messages: [
          { role: "user", content: "" },
          { role: "user", content: m },
        ],
      }),
      fields: ["messages.0.content"],
    },
    {
      name: "a whitespace content",
      body: (m) => ({
        messages: [
          { role: "user", content: " \n\t" },
          { role: "user", content: m },
        ],
      }),
      fields: ["messages.0.content"],
    },
    {
      name: "a content that is not a string",
      body: (m) => ({
        messages: [
          { role: "user", content: [{ type: "text", text: "x" }] },
          { role: "user", content: m },
        ],
      }),
      fields: ["messages.0.content"],
    },
    {
      name: "a content over 8192 characters",
      body: (m) => ({
        messages: [
          { role: "user", content: "x".repeat(8193) },
          { role: "user", content: m },
        ],
      }),
      fields: ["messages.0.content"],
    },
    {
      name: "another key in a message",
      body: (m) => ({ messages: [{ role: "user", content: m, name: "bob" }] }),
      fields: ["messages.0.name"],
    },
    {
      name: "a missing role",
      body: (m) => ({ messages: [{ content: m }] }),
      fields: ["messages.0.role"],
    },
    {
      name: "a message that is not an object",
      body: (m) => ({ messages: ["hi", { role: "user", content: m }] }),
      fields: ["messages.0"],
    },
    {
      name: "a last turn from the assistant",
      body: (m) => ({
        messages: [
          { role: "user", content: m },
          { role: "assistant", content: "ok" },
        ],
      }),
      fields: ["messages.1.role"],
    },
    { name: "no messages at all", body: () => ({ messages: [] }), fields: ["messages"] },
    {
      name: "messages that are not a list",
      body: (m) => ({ messages: { role: "user", content: m } }),
      fields: ["messages"],
    },
    {
      name: "both message and messages",
      body: (m) => ({ message: m, messages: [{ role: "user", content: m }] }),
      fields: ["messages"],
    },
    {
      name: "neither message nor messages",
      body: () => ({ model: "gpt-4o-mini" }),
      fields: ["message"],
    },
    {
      name: "more turns than MAX_MESSAGES",
      body: (m) => ({ messages: turns(m) }),
      fields: ["messages"],
      env: { MAX_MESSAGES: "3" },
    },
    {
      name: "more characters than MAX_PROMPT_CHARS",
      body: (m) => ({
        messages: [
          { role: "user", content: "x".repeat(200) },
          { role: "assistant", content: "ok" },
          { role: "user", content: m },
        ],
      }),
      fields: ["messages"],
      env: { MAX_PROMPT_CHARS: "220" },
    },
    {
      name: "a bad role and a bad content at once",
      body: (m) => ({
        messages: [
          { role: "system", content: "" },
          { role: "user", content: m },
        ],
      }),
      fields: ["messages.0.content", "messages.0.role"],
    },
  ];
}

describe("a bad conversation", () => {
  for (const c of badCases()) {
    it(`is a 422 naming its field for ${c.name}, and spends nothing`, async () => {
      const who = await anonCaller();
      const { id, message } = fakeMessage();
      const bindings = testEnv(c.env);
      const { res, settled } = await post(who, c.body(message), bindings);
      expect(res.status).toBe(422);
      const body = (await res.json()) as ErrorBody;
      expect(body.error_code).toBe("invalid_input");
      expect([...(body.fields ?? [])].sort()).toEqual(c.fields);
      for (const field of c.fields) expect(body.detail).toContain(field);
      await settled();
      expect(await upstreamRecord(id)).toBeNull();
      await expectNothingSpent(who, bindings);
    });
  }

  it("refuses messages in a GET query", async () => {
    const who = await anonCaller();
    const query = new URLSearchParams({ messages: "[]", message: "hi" });
    const { res } = await call(`/api/v1/stream?${query}`, {
      headers: bearer(who.token),
      ip: who.ip,
    });
    expect(res.status).toBe(422);
    expect(((await res.json()) as ErrorBody).fields).toEqual(["messages"]);
    await expectNothingSpent(who);
  });
});

describe("anonymous callers (ANON_MODELS, ANON_COST_CAP_MAX_USD at their defaults)", () => {
  const defaults = () => testEnv({ ANON_MODELS: undefined, ANON_COST_CAP_MAX_USD: undefined });

  it("get 403 model_not_allowed for a model outside ANON_MODELS, after auth, spending nothing", async () => {
    const who = await anonCaller();
    const bindings = defaults();
    const { id, message } = fakeMessage();
    const { res, settled } = await post(who, { message, model: "gpt-4o" }, bindings);
    expect(res.status).toBe(403);
    expect(((await res.json()) as ErrorBody).error_code).toBe("model_not_allowed");
    await settled();
    expect(await upstreamRecord(id)).toBeNull();
    await expectNothingSpent(who, bindings);
    // Authentication comes first: without a token it is a 401.
    const anon = await post({ token: "x.y.z", ip: who.ip }, { message, model: "gpt-4o" }, bindings);
    expect(anon.res.status).toBe(401);
  });

  it("run under a cap of at most and by default ANON_COST_CAP_MAX_USD", async () => {
    const bindings = defaults();
    const over = await anonCaller();
    const refused = await post(over, { message: "hi", cost_cap_usd: 0.021 }, bindings);
    expect(refused.res.status).toBe(422);
    expect(((await refused.res.json()) as ErrorBody).fields).toEqual(["cost_cap_usd"]);
    await expectNothingSpent(over, bindings);

    const who = await anonCaller();
    const { id, message } = fakeMessage({ tokens: 1 });
    const { res, settled } = await post(who, { message }, bindings);
    expect(res.status).toBe(200);
    await readEvents(res);
    await settled();
    const prompt: PromptMessage[] = [{ role: "user", content: message }];
    expect((await upstreamRecord(id))?.maxTokens).toBe(
      maxOutputTokens(MODELS["gpt-4o-mini"], prompt, 20_000),
    );
  });

  it("leave signed-in users free to pick any model and a larger cap", async () => {
    const bindings = defaults();
    const token = await supabaseHs256();
    const { id, message } = fakeMessage({ tokens: 1 });
    const { res, settled } = await post(
      { token, ip: freshIp() },
      { message, model: "gpt-4o", cost_cap_usd: 0.5 },
      bindings,
    );
    expect(res.status).toBe(200);
    await readEvents(res);
    await settled();
    expect((await upstreamRecord(id))?.model).toBe("gpt-4o");
  });
});

describe("the max-tokens parameter", () => {
  it.each([
    ["o4-mini", "max_completion_tokens"],
    ["gpt-5-mini", "max_completion_tokens"],
    ["gpt-4o-mini", "max_tokens"],
    ["gpt-4.1-mini", "max_tokens"],
  ] as const)("is sent to %s as %s, derived from the cap", async (model, param) => {
    const who = await anonCaller();
    const { id, messages } = history({ tokens: 2 });
    const cap = 0.002;
    const { res, settled } = await post(who, { messages, model, cost_cap_usd: cap });
    expect(res.status).toBe(200);
    await readEvents(res);
    await settled();
    const seen = await upstreamRecord(id);
    const expected = maxOutputTokens(MODELS[model], messages, usdToMicro(cap));
    expect(expected).toBeGreaterThan(0);
    expect(MODELS[model].maxTokensParam).toBe(param);
    if (param === "max_completion_tokens") {
      expect(seen).toMatchObject({ maxCompletionTokens: expected, maxTokens: null });
    } else {
      expect(seen).toMatchObject({ maxTokens: expected, maxCompletionTokens: null });
    }
  });
});

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

describe("GET /api/v1/models", () => {
  it("says whether the built-in demo answers: in development without a key, and only then", async () => {
    const demoOf = async (bindings: ReturnType<typeof testEnv>) => {
      const { res } = await call("/api/v1/models", {}, bindings);
      return ((await res.json()) as { demo: unknown }).demo;
    };
    expect(await demoOf(testEnv({ OPENAI_API_KEY: undefined }))).toBe(true);
    expect(await demoOf(testEnv())).toBe(false);
  });

  it("lists the registry with prices, the default and what anonymous callers may use", async () => {
    const { res } = await call(
      "/api/v1/models",
      {},
      testEnv({ ANON_MODELS: "gpt-4o-mini,o4-mini" }),
    );
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      default: string;
      models: {
        id: string;
        input_usd_per_million: number;
        output_usd_per_million: number;
        anonymous: boolean;
        reasoning: boolean;
      }[];
    };
    expect(body.default).toBe("gpt-4o-mini");
    expect(body.models.map((m) => m.id)).toEqual(Object.keys(MODELS));
    expect(body.models.find((m) => m.id === "gpt-4o")).toEqual({
      id: "gpt-4o",
      input_usd_per_million: 2.5,
      output_usd_per_million: 10,
      anonymous: false,
      reasoning: false,
    });
    expect(body.models.filter((m) => m.anonymous).map((m) => m.id)).toEqual([
      "gpt-4o-mini",
      "o4-mini",
    ]);
    expect(body.models.find((m) => m.id === "o4-mini")?.reasoning).toBe(true);
  });

  it("refuses a configuration naming a model the registry does not have", async () => {
    const { res } = await call("/api/v1/models", {}, testEnv({ ANON_MODELS: "gpt-4o-mini,gpt-9" }));
    expect(res.status).toBe(500);
    expect(((await res.json()) as ErrorBody).error_code).toBe("misconfigured");
  });
});
