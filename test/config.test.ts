/**
 * @module Weak production settings: a plain-http address for the key set, the store or siteverify
 * (anyone on the path could forge users or answers) and short operator tokens make the API
 * answer 500 misconfigured, while the page and /healthz keep serving.
 */
import { describe, expect, it } from "vitest";
import type { Bindings } from "../src/env";
import type { ErrorBody } from "../src/errors";
import { call, testEnv } from "./helpers/app";
import { SECRET_KEY } from "./helpers/tokens";

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
    // (ADMIN_TOKEN must have 32 characters everywhere: test/admin.test.ts.)
    const env = testEnv({ METRICS_TOKEN: "1" });
    expect((await status("/api/v1/nope", env))[1]).toBe("not_found");
  });
});
