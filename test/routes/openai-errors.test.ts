/** @module Errors on the OpenAI surface: OpenAI's error shape, before and during a stream, spending nothing when refused. */
import { describe, expect, it } from "vitest";
import { call, testEnv } from "../helpers/app";
import {
  anonCaller,
  expectNothingSpent,
  fakeMessage,
  freshIp,
  upstreamRecord,
} from "../helpers/gate";
import { complete, nativeStream, type OpenAiError } from "../helpers/openai";

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
