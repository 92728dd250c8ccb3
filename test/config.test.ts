/**
 * @module The configuration at start: weak production settings (a plain-http address for the key
 * set, the store or siteverify, through which anyone on the path could forge users or answers, and
 * short operator tokens) and invalid ones make the API answer 500 misconfigured, while the page
 * and /healthz keep serving.
 */
import { describe, expect, it } from "vitest";
import type { Bindings } from "../src/env";
import type { ErrorBody } from "../src/errors";
import { call, testEnv } from "./helpers/app";
import { expectError, request } from "./helpers/shell";
import { anonToken, bearer, SECRET_KEY } from "./helpers/tokens";

type Vars = Partial<Record<keyof Bindings, string | undefined>>;

/** A production env that passes every check: https everywhere, strong tokens. */
const production = (overrides: Vars = {}) =>
  testEnv({
    ENVIRONMENT: "production",
    SECRET_KEY,
    SUPABASE_URL: "https://abcdefghijklmnop.supabase.co",
    SUPABASE_JWKS_URL: undefined,
    OPENAI_BASE_URL: "https://api.openai.com/v1",
    METRICS_TOKEN: "m".repeat(32),
    ...overrides,
  });

async function status(path: string, env: Bindings): Promise<[number, string | undefined]> {
  const { res, settled } = await call(path, {}, env);
  await settled();
  const type = res.headers.get("Content-Type") ?? "";
  const code = type.includes("json") ? ((await res.json()) as ErrorBody).error_code : undefined;
  if (!type.includes("json")) await res.body?.cancel();
  return [res.status, code];
}

describe("production settings", () => {
  it("serve the API when every address is https and every token long enough (the control)", async () => {
    expect((await status("/api/v1/models-or-not", production()))[1]).toBe("not_found");
    expect(await status("/healthz", production())).toEqual([200, undefined]);
  });

  const WEAK: [string, Vars][] = [
    ["SUPABASE_URL over http", { SUPABASE_URL: "http://abcdefghijklmnop.supabase.co" }],
    ["SUPABASE_JWKS_URL over http", { SUPABASE_JWKS_URL: "http://keys.example/jwks.json" }],
    [
      "UPSTASH_REDIS_REST_URL over http",
      { UPSTASH_REDIS_REST_URL: "http://redis.example", UPSTASH_REDIS_REST_TOKEN: "t" },
    ],
    [
      "TURNSTILE_VERIFY_URL over http",
      {
        TURNSTILE_SECRET_KEY: "secret",
        TURNSTILE_SITE_KEY: "1x00000000000000000000AA",
        TURNSTILE_VERIFY_URL: "http://siteverify.example/siteverify",
      },
    ],
    ['METRICS_TOKEN="1"', { METRICS_TOKEN: "1" }],
    ["a METRICS_TOKEN of 31 characters", { METRICS_TOKEN: "m".repeat(31) }],
    ["an ADMIN_TOKEN of 31 characters", { ADMIN_TOKEN: "a".repeat(31) }],
  ];
  for (const [what, vars] of WEAK) {
    it(`with ${what}: the API answers misconfigured, the page and /healthz still serve`, async () => {
      const env = production(vars);
      expect(await status("/api/v1/usage", env)).toEqual([500, "misconfigured"]);
      expect(await status("/healthz", env)).toEqual([200, undefined]);
      const page = await call("/magic/", {}, env);
      expect(page.res.status).toBe(200);
      expect(await page.res.text()).toContain("<title>Magic Box</title>");
    });
  }

  it("accept plain http and short tokens in development", async () => {
    // (ADMIN_TOKEN must have 32 characters everywhere: test/routes/admin.test.ts.)
    const env = testEnv({ METRICS_TOKEN: "1" });
    expect((await status("/api/v1/nope", env))[1]).toBe("not_found");
  });
});

describe("an invalid configuration", () => {
  const BAD: [string, Partial<Record<keyof Bindings, string | undefined>>, string][] = [
    ["RATE_LIMIT_USER is not a rate limit", { RATE_LIMIT_USER: "lots" }, "lots"],
    ["RATE_LIMIT_IP has no window", { RATE_LIMIT_IP: "60-per-minute" }, "60-per-minute"],
    ["COST_CAP_MAX_USD is not a number", { COST_CAP_MAX_USD: "cheap-as-chips" }, "cheap-as-chips"],
    ["ANON_QUOTA_TOTAL is negative", { ANON_QUOTA_TOTAL: "-100" }, "-100"],
    ["SUPABASE_URL is not a URL", { SUPABASE_URL: "not a url: hunter2" }, "hunter2"],
    [
      "UPSTASH_REDIS_REST_URL is set without its token",
      {
        UPSTASH_REDIS_REST_URL: "https://secret-host.example",
        UPSTASH_REDIS_REST_TOKEN: undefined,
      },
      "secret-host",
    ],
    [
      "production talks to the upstream over plain http",
      { ENVIRONMENT: "production", OPENAI_BASE_URL: "http://plain.example/v1" },
      "plain.example",
    ],
  ];

  for (const [name, overrides, value] of BAD) {
    describe(`when ${name}`, () => {
      const env = testEnv(overrides);
      const apiCalls: [string, () => Promise<RequestInit>][] = [
        ["GET /api/v1/usage", async () => ({ headers: bearer(await anonToken()) })],
        ["GET /api/v1/stream", async () => ({ headers: bearer(await anonToken()) })],
        [
          "POST /api/v1/stream",
          async () => ({
            method: "POST",
            headers: { ...bearer(await anonToken()), "Content-Type": "application/json" },
            body: JSON.stringify({ message: "hi" }),
          }),
        ],
        [
          "POST /api/v1/anon_session",
          async () => ({ method: "POST", headers: { "Content-Type": "application/json" } }),
        ],
        ["GET /api/v1/nope", async () => ({})],
      ];
      for (const [route, init] of apiCalls) {
        it(`answers ${route} with 500 misconfigured, naming no value`, async () => {
          const [method, path] = route.split(" ") as [string, string];
          const query = path === "/api/v1/stream" && method === "GET" ? "?message=hi" : "";
          const result = await request(`${path}${query}`, { method, ...(await init()) }, env);
          const body = expectError(result, 500, "misconfigured");
          expect(result.text).not.toContain(value);
          expect(body.detail).not.toMatch(/[A-Z]{3,}_[A-Z_]+/);
        });
      }

      it("still answers GET /healthz with 200", async () => {
        const { res, text } = await request("/healthz", {}, env);
        expect(res.status).toBe(200);
        expect(JSON.parse(text)).toEqual({ status: "ok" });
      });
    });
  }

  it("answers misconfigured as one SSE error frame to an event-stream client", async () => {
    const { res, text } = await request(
      "/api/v1/stream?message=hi",
      { headers: { ...bearer(await anonToken()), Accept: "text/event-stream" } },
      testEnv({ RATE_LIMIT_USER: "lots" }),
    );
    expect(res.status).toBe(500);
    expect(res.headers.get("Content-Type")).toMatch(/^text\/event-stream/);
    expect(text).toMatch(/^id: 1\nevent: error\ndata: \{.*"error_code":"misconfigured".*\}\n\n$/);
    expect(text).not.toContain("lots");
  });

  it("recovers once the variable is fixed (a new env is parsed afresh)", async () => {
    expectError(
      await request(
        "/api/v1/anon_session",
        { method: "POST", headers: { "Content-Type": "application/json" } },
        testEnv({ RATE_LIMIT_USER: "lots" }),
      ),
      500,
      "misconfigured",
    );
    const { res } = await request(
      "/api/v1/anon_session",
      { method: "POST", headers: { "Content-Type": "application/json" } },
      testEnv({ RATE_LIMIT_USER: "30/30s" }),
    );
    expect(res.status).toBe(200);
  });
});
