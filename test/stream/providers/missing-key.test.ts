/** @module A deployment without OPENAI_API_KEY: the demo provider answers in development, production refuses with 503 model_unavailable. */
import { describe, expect, it } from "vitest";
import { demoAnswer } from "../../../src/stream/providers/demo";
import { testEnv } from "../../helpers/app";
import { usageOfToken } from "../../helpers/gate";
import { readEvents } from "../../helpers/sse";
import { chunksOf, doneOf, type ErrorData, expectFraming, startStream } from "../../helpers/stream";
import { anonToken, SECRET_KEY } from "../../helpers/tokens";

describe("demo provider", () => {
  it("answers in development without OPENAI_API_KEY", async () => {
    const token = await anonToken();
    const message = "What is the demo?";
    const { res, settled } = await startStream({
      token,
      message,
      bindings: testEnv({ OPENAI_API_KEY: undefined }),
    });
    expect(res.status).toBe(200);
    const events = await readEvents(res);
    await settled();

    expectFraming(events);
    const done = doneOf(events);
    expect(done).toMatchObject({ provider: "demo", finish_reason: "stop" });
    expect(
      chunksOf(events)
        .map((c) => c.content)
        .join(""),
    ).toBe(demoAnswer(message).join(""));
  });

  it("answers 503 model_unavailable in production without OPENAI_API_KEY, spending nothing", async () => {
    const bindings = testEnv({
      OPENAI_API_KEY: undefined,
      ENVIRONMENT: "production",
      SECRET_KEY,
      OPENAI_BASE_URL: "https://api.openai.com/v1",
      // Production refuses plain-http addresses; the test env's point at loopback servers.
      SUPABASE_URL: "https://abcdefghijklmnop.supabase.co",
      SUPABASE_JWKS_URL: undefined,
    });
    const token = await anonToken();
    const before = await usageOfToken(token, bindings);
    const { res, settled } = await startStream({
      token,
      message: "hello",
      bindings,
    });
    const body = (await res.json()) as ErrorData;
    await settled();

    expect(res.status).toBe(503);
    expect(body.error_code).toBe("model_unavailable");
    expect(Number(res.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
    const after = await usageOfToken(token, bindings);
    expect(after.quota).toEqual(before.quota);
    expect(after.limits.user.remaining).toBe(after.limits.user.limit);
    expect(after.spend.streams).toBe(0);
  });
});
