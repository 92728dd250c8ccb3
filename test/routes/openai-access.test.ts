/** @module GET /v1/models, one gate for the native and the OpenAI routes, and CORS on the OpenAI surface. */
import { describe, expect, it } from "vitest";
import { MODELS } from "../../src/stream/models";
import { call, testEnv } from "../helpers/app";
import {
  anonCaller,
  fakeMessage,
  freshIp,
  ledgerOf,
  upstreamRecord,
  usageOf,
} from "../helpers/gate";
import { complete, nativeStream, type OpenAiError } from "../helpers/openai";
import { readEvents } from "../helpers/sse";
import { anonToken, bearer, supabaseClaims, supabaseHs256 } from "../helpers/tokens";

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
