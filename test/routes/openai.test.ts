/**
 * @module The OpenAI-compatible surface in workerd: its wire formats, its error shape and
 * headers, its parameters, CORS, and the same gate as the native route (limits, quotas and
 * ledger shared by one user across both routes). Real SDK clients: test/e2e/openai-sdk.e2e.test.ts.
 */
import { describe, expect, it } from "vitest";
import { maxOutputTokens, usdToMicro } from "../../src/stream/cost";
import { MODELS } from "../../src/stream/models";
import { call, testEnv } from "../helpers/app";
import {
  anonCaller,
  expectNothingSpent,
  fakeMessage,
  freshIp,
  ledgerOf,
  postAs,
  upstreamRecord,
  usageOf,
  type Who,
} from "../helpers/gate";
import { readEvents } from "../helpers/sse";
import { anonToken, bearer, supabaseClaims, supabaseHs256 } from "../helpers/tokens";

/** POSTs a chat-completions body as `who`. */
const complete = (
  who: Who,
  body: unknown,
  bindings = testEnv(),
  headers: Record<string, string> = {},
) => postAs(who, "/v1/chat/completions", body, bindings, headers);

/** POSTs a native stream body as `who`. */
const nativeStream = (who: Who, body: unknown, bindings = testEnv()) =>
  postAs(who, "/api/v1/stream", body, bindings);

/** The `data:` payloads of an OpenAI stream, and its comment lines. */
async function dataLines(res: Response): Promise<{ data: string[]; comments: string[] }> {
  const text = await res.text();
  const lines = text.split("\n").filter(Boolean);
  return {
    data: lines.filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)),
    comments: lines.filter((l) => l.startsWith(":")),
  };
}

interface OpenAiError {
  error: { message: string; type: string; code: string; param: string | null };
}

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

describe("errors on the OpenAI surface", () => {
  it.each([
    ["functions", { functions: [{ name: "f" }] }, "functions"],
    ["a tool that is not a function", { tools: [{ type: "web_search" }] }, "tools.0.type"],
    ["an unknown response format", { response_format: { type: "yaml" } }, "response_format.type"],
    ["logprobs", { logprobs: true }, "logprobs"],
    ["n > 1", { n: 2 }, "n"],
    ["audio", { audio: { voice: "alloy", format: "mp3" } }, "audio"],
    ["modalities", { modalities: ["text", "audio"] }, "modalities"],
    ["an unknown field", { frobnicate: 1 }, "frobnicate"],
    [
      "a tool message without its call id",
      { messages: [{ role: "tool", content: "x" }] },
      "messages.0.tool_call_id",
    ],
    ["a cap over the maximum", { cost_cap_usd: 5 }, "cost_cap_usd"],
  ])(
    "is a 400 invalid_request_error naming the parameter for %s, spending nothing",
    async (_name, extra, param) => {
      const who = await anonCaller();
      const { id, message } = fakeMessage();
      const { res, settled } = await complete(who, {
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: message }],
        ...extra,
      });
      expect(res.status).toBe(400);
      const body = await res.json<OpenAiError>();
      expect(body.error).toMatchObject({
        type: "invalid_request_error",
        code: "invalid_input",
        param,
      });
      expect(body.error.message).toContain(param);
      expect(res.headers.get("X-Request-Id")).toBeTruthy();
      await settled();
      expect(await upstreamRecord(id)).toBeNull();
      await expectNothingSpent(who);
    },
  );

  it("is a 404 model_not_found for an unknown model, as OpenAI answers it, spending nothing", async () => {
    const who = await anonCaller();
    const { id, message } = fakeMessage();
    const { res, settled } = await complete(who, {
      model: "gpt-9",
      messages: [{ role: "user", content: message }],
      // Another bad field does not turn it into a 400: the model is checked first, as OpenAI does.
      temperature: 7,
    });
    expect(res.status).toBe(404);
    expect(await res.json<OpenAiError>()).toEqual({
      error: {
        message: 'The model "gpt-9" does not exist',
        type: "invalid_request_error",
        code: "model_not_found",
        param: "model",
      },
    });
    await settled();
    expect(await upstreamRecord(id)).toBeNull();
    await expectNothingSpent(who);
  });

  it("keeps the native API's 422 invalid_input for an unknown model", async () => {
    const who = await anonCaller();
    const { res } = await nativeStream(who, { message: "hi", model: "gpt-9" });
    expect(res.status).toBe(422);
    expect(await res.json()).toMatchObject({ error_code: "invalid_input", fields: ["model"] });
  });

  it("tells a caller whose Bearer key is not a JWT what to send instead, not that the header was not Bearer", async () => {
    const { res } = await complete(
      { token: "sk-proj-0123456789abcdef", ip: freshIp() },
      { model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] },
    );
    expect(res.status).toBe(401);
    const { error } = await res.json<OpenAiError>();
    expect(error).toMatchObject({ type: "authentication_error", code: "unauthorized" });
    expect(error.message).toContain("not a gateway token");
    expect(error.message).toContain("/api/v1/anon_session");
    expect(error.message).not.toMatch(/must be 'Bearer/);
  });

  it("says the header must be Bearer only when it is not", async () => {
    const { res } = await call("/v1/chat/completions", {
      method: "POST",
      headers: { Authorization: "Basic dXNlcjpwYXNz", "Content-Type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(401);
    expect((await res.json<OpenAiError>()).error.message).toBe(
      "the Authorization header must be 'Bearer <token>'",
    );
  });

  it("is a 400 for a body that is not JSON (415 natively)", async () => {
    const who = await anonCaller();
    const { res } = await complete(who, "model=x", testEnv(), { "Content-Type": "text/plain" });
    expect(res.status).toBe(400);
    expect((await res.json<OpenAiError>()).error.code).toBe("unsupported_media_type");
  });

  it("is a 401 authentication_error without a valid token", async () => {
    const { res } = await complete(
      { token: "a.b.c", ip: freshIp() },
      { model: "gpt-4o-mini", messages: [] },
    );
    expect(res.status).toBe(401);
    expect(res.headers.get("WWW-Authenticate")).toContain("Bearer");
    expect((await res.json<OpenAiError>()).error).toMatchObject({
      type: "authentication_error",
      code: "unauthorized",
      param: null,
    });
  });

  it("is a 403 permission_error for a model anonymous callers may not use", async () => {
    const who = await anonCaller();
    const bindings = testEnv({ ANON_MODELS: undefined });
    const { res } = await complete(
      who,
      { model: "gpt-4o", messages: [{ role: "user", content: "hi" }] },
      bindings,
    );
    expect(res.status).toBe(403);
    expect((await res.json<OpenAiError>()).error).toMatchObject({
      type: "permission_error",
      code: "model_not_allowed",
    });
    await expectNothingSpent(who, bindings);
  });

  it("tells clients not to retry a spent quota, with Retry-After and retry-after-ms", async () => {
    const who = await anonCaller();
    const bindings = testEnv({ ANON_QUOTA_TOTAL: "1" });
    const body = { model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] };
    const first = await complete(who, body, bindings);
    expect(first.res.status).toBe(200);
    await first.res.text();
    await first.settled();
    const { res } = await complete(who, body, bindings);
    expect(res.status).toBe(429);
    expect(res.headers.get("x-should-retry")).toBe("false");
    const seconds = Number(res.headers.get("Retry-After"));
    expect(seconds).toBeGreaterThan(0);
    expect(res.headers.get("retry-after-ms")).toBe(String(seconds * 1000));
    expect((await res.json<OpenAiError>()).error).toMatchObject({
      type: "rate_limit_error",
      code: "quota_exceeded",
    });
  });

  it("lets clients retry a rate limit (no x-should-retry), with retry-after-ms", async () => {
    const who = await anonCaller();
    const bindings = testEnv({ RATE_LIMIT_USER: "1/30s" });
    const body = { model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] };
    await (await complete(who, body, bindings)).res.text();
    const { res } = await complete(who, body, bindings);
    expect(res.status).toBe(429);
    expect(res.headers.get("x-should-retry")).toBeNull();
    expect(Number(res.headers.get("retry-after-ms"))).toBe(
      Number(res.headers.get("Retry-After")) * 1000,
    );
    expect((await res.json<OpenAiError>()).error.code).toBe("rate_limited");
  });

  it("answers unknown /v1 paths 404 and wrong methods 405, in OpenAI's shape", async () => {
    const missing = await call("/v1/embeddings", { method: "POST" });
    expect(missing.res.status).toBe(404);
    expect((await missing.res.json<OpenAiError>()).error.code).toBe("not_found");
    const wrong = await call("/v1/chat/completions");
    expect(wrong.res.status).toBe(405);
    expect(wrong.res.headers.get("Allow")).toBe("POST, OPTIONS");
  });
});

describe("GET /v1/models", () => {
  it("lists the models this caller may use, in OpenAI's list shape", async () => {
    const bindings = testEnv({ ANON_MODELS: undefined });
    const anon = await call("/v1/models", { headers: bearer(await anonToken()) }, bindings);
    expect(await anon.res.json()).toEqual({
      object: "list",
      data: [{ id: "gpt-4o-mini", object: "model", created: 0, owned_by: "magic-box" }],
    });
    const user = await call("/v1/models", { headers: bearer(await supabaseHs256()) }, bindings);
    const ids = (await user.res.json<{ data: { id: string }[] }>()).data.map((m) => m.id);
    expect(ids).toEqual(Object.keys(MODELS));
    const none = await call("/v1/models", {}, bindings);
    expect(none.res.status).toBe(401);
  });
});

describe("one gate for both routes", () => {
  it("counts one user's requests on both routes against the same rate limit", async () => {
    const who = await anonCaller();
    const bindings = testEnv({ RATE_LIMIT_USER: "2/30s" });
    const native = await nativeStream(who, { message: "one" }, bindings);
    await readEvents(native.res);
    const compat = await complete(
      who,
      { model: "gpt-4o-mini", messages: [{ role: "user", content: "two" }] },
      bindings,
    );
    expect(compat.res.status).toBe(200);
    await compat.res.text();
    const third = await nativeStream(who, { message: "three" }, bindings);
    expect(third.res.status).toBe(429);
    const fourth = await complete(
      who,
      { model: "gpt-4o-mini", messages: [{ role: "user", content: "four" }] },
      bindings,
    );
    expect(fourth.res.status).toBe(429);
    expect((await fourth.res.json<OpenAiError>()).error.code).toBe("rate_limited");
  });

  it("spends one anonymous quota across both routes", async () => {
    const who = await anonCaller();
    const bindings = testEnv({ ANON_QUOTA_TOTAL: "2" });
    const a = await complete(
      who,
      { model: "gpt-4o-mini", messages: [{ role: "user", content: "a" }], stream: true },
      bindings,
    );
    await a.res.text();
    await a.settled();
    const b = await nativeStream(who, { message: "b" }, bindings);
    const done = (await readEvents(b.res)).find((e) => e.event === "done");
    await b.settled();
    expect(done?.data.quota).toEqual({ hourly_remaining: expect.any(Number), total_remaining: 0 });
    const c = await complete(
      who,
      { model: "gpt-4o-mini", messages: [{ role: "user", content: "c" }] },
      bindings,
    );
    expect(c.res.status).toBe(429);
    expect((await c.res.json<OpenAiError>()).error.code).toBe("quota_exceeded");
    const native = await nativeStream(who, { message: "d" }, bindings);
    expect(native.res.status).toBe(429);
    expect(((await native.res.json()) as { error_code: string }).error_code).toBe("quota_exceeded");
  });

  it("writes the same ledger record, whichever route the stream came by", async () => {
    const claims = supabaseClaims();
    const who = { token: await supabaseHs256(claims), ip: freshIp() };
    const key = `supabase:${claims.sub}`;
    const native = fakeMessage({ tokens: 3 }, "same");
    const compat = { ...native, id: crypto.randomUUID() };
    compat.message = native.message.replace(native.id, compat.id);
    const n = await nativeStream(who, { message: native.message, model: "gpt-4o" });
    await readEvents(n.res);
    await n.settled();
    const c = await complete(who, {
      model: "gpt-4o",
      messages: [{ role: "user", content: compat.message }],
      stream: true,
    });
    await c.res.text();
    await c.settled();
    const records = await ledgerOf(key);
    expect(records).toHaveLength(2);
    const [first, second] = records.map(
      ({
        recordId: _r,
        streamId: _s,
        startedAt: _t,
        ttftMs: _f,
        durationMs: _d,
        hold: _h,
        ...rest
      }) => rest,
    );
    expect(second).toEqual(first);
    expect(first).toMatchObject({
      userKey: key,
      model: "gpt-4o",
      outputTokens: 3,
      finishReason: "stop",
      usageSource: "upstream",
    });
    // The upstream saw the same request from both routes, bounds included.
    const [a, b] = [await upstreamRecord(native.id), await upstreamRecord(compat.id)];
    expect(b?.maxTokens).toBe(a?.maxTokens);
    expect((await usageOf(who)).spend.streams).toBe(2);
  });
});

describe("CORS", () => {
  const origin = "https://app.example.com";
  const preflight = (bindings = testEnv({ CORS_ORIGINS: `${origin},https://other.example` })) =>
    call(
      "/v1/chat/completions",
      {
        method: "OPTIONS",
        headers: {
          Origin: origin,
          "Access-Control-Request-Method": "POST",
          "Access-Control-Request-Headers":
            "authorization,content-type,x-stainless-os,x-stainless-retry-count",
        },
      },
      bindings,
    );

  it("answers an allow-listed origin's preflight with the SDK headers", async () => {
    const { res } = await preflight();
    expect(res.status).toBe(204);
    expect(res.headers.get("Access-Control-Allow-Origin")).toBe(origin);
    const allowed = (res.headers.get("Access-Control-Allow-Headers") ?? "")
      .toLowerCase()
      .split(",");
    for (const h of [
      "authorization",
      "content-type",
      "x-stainless-os",
      "x-stainless-retry-count",
    ]) {
      expect(allowed).toContain(h);
    }
    expect(res.headers.get("Access-Control-Allow-Methods")).toContain("POST");
  });

  it("lets an allow-listed origin read the answer and its ids, errors included", async () => {
    const bindings = testEnv({ CORS_ORIGINS: origin });
    const { res } = await call(
      "/api/v1/stream?message=hi",
      { headers: { Origin: origin } },
      bindings,
    );
    expect(res.status).toBe(401);
    expect(res.headers.get("Access-Control-Allow-Origin")).toBe(origin);
    expect(res.headers.get("Access-Control-Expose-Headers")).toContain("X-Request-Id");
  });

  it("gives no other origin, and no origin at all without CORS_ORIGINS, any CORS header", async () => {
    const other = await call(
      "/v1/models",
      { headers: { Origin: "https://evil.example" } },
      testEnv({ CORS_ORIGINS: origin }),
    );
    expect(other.res.headers.get("Access-Control-Allow-Origin")).toBeNull();
    const none = await preflight(testEnv());
    expect(none.res.headers.get("Access-Control-Allow-Origin")).toBeNull();
    expect(none.res.headers.get("Access-Control-Allow-Headers")).toBeNull();
  });

  it("refuses a CORS_ORIGINS entry that is not an origin", async () => {
    const { res } = await call(
      "/v1/models",
      {},
      testEnv({ CORS_ORIGINS: "https://app.example.com/path" }),
    );
    expect(res.status).toBe(500);
  });
});
