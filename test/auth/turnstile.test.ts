/**
 * @module Turnstile on minting, against the siteverify stand-in on loopback: a token counts only
 * for this host and the action `anon_session`; siteverify down or unreachable mints nothing; a
 * failed challenge spends no mint; the page learns the site key and its CSP admits the widget.
 */
import { describe, expect, inject, it } from "vitest";
import type { Bindings } from "../../src/env";
import type { ErrorBody } from "../../src/errors";
import { call, testEnv } from "../helpers/app";
import { randomIp } from "../helpers/stores";
import {
  TURNSTILE_TEST_SECRET,
  TURNSTILE_TEST_SITE_KEY,
  verdictToken,
} from "../support/siteverify-tokens";

const HOST = "gateway.test";
const turnstileEnv = (overrides: Partial<Record<keyof Bindings, string>> = {}) =>
  testEnv({
    TURNSTILE_SECRET_KEY: TURNSTILE_TEST_SECRET,
    TURNSTILE_SITE_KEY: TURNSTILE_TEST_SITE_KEY,
    TURNSTILE_VERIFY_URL: inject("siteverifyUrl"),
    ...overrides,
  });

/** A token the stand-in accepts for `verdict`, unique so its siteverify calls can be counted. */
const token = (verdict: Record<string, unknown> = {}) =>
  verdictToken({
    success: true,
    hostname: HOST,
    action: "anon_session",
    nonce: crypto.randomUUID(),
    ...verdict,
  });

async function mint(body: Record<string, unknown>, env: Bindings, ip = randomIp()) {
  const { res, settled } = await call(
    "/api/v1/anon_session",
    {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      ip,
    },
    env,
  );
  await settled();
  return res;
}

async function siteverifyCalls(t: string): Promise<{ calls: number; remoteip: string | null }> {
  const url = new URL("/__test/calls", inject("siteverifyUrl"));
  url.searchParams.set("token", t);
  return (await (await fetch(url)).json()) as { calls: number; remoteip: string | null };
}

async function expectChallengeFailed(res: Response): Promise<void> {
  expect(res.status).toBe(403);
  const body = (await res.json()) as ErrorBody;
  expect(body.error_code).toBe("challenge_failed");
  expect(body.detail).not.toMatch(/secret|siteverify|hostname/i);
}

describe("minting with TURNSTILE_SECRET_KEY set", () => {
  it("mints for a token siteverify accepts for this host and action, asking it once", async () => {
    const t = token();
    const res = await mint({ turnstile_token: t, ttl_seconds: 600 }, turnstileEnv(), "203.0.113.9");
    expect(res.status).toBe(200);
    expect(((await res.json()) as { expires_in: number }).expires_in).toBe(600);
    expect(await siteverifyCalls(t)).toEqual({ calls: 1, remoteip: "203.0.113.9" });
  });

  it("refuses a mint without a token, asking siteverify nothing", async () => {
    await expectChallengeFailed(await mint({}, turnstileEnv()));
  });

  const refused: [string, () => string][] = [
    ["a token siteverify rejects", () => `forged-${crypto.randomUUID()}`],
    ["success: false", () => token({ success: false })],
    ["a token solved on another host", () => token({ hostname: "evil.example" })],
    ["a token without a hostname", () => token({ hostname: undefined })],
    ["a token for another action", () => token({ action: "login" })],
    ["a token without an action", () => token({ action: undefined })],
  ];
  for (const [what, make] of refused) {
    it(`answers 403 challenge_failed to ${what}`, async () => {
      const t = make();
      await expectChallengeFailed(await mint({ turnstile_token: t }, turnstileEnv()));
      expect((await siteverifyCalls(t)).calls).toBe(1);
    });
  }

  it("refuses when the worker's secret is not the one siteverify knows", async () => {
    const env = turnstileEnv({ TURNSTILE_SECRET_KEY: "some-other-secret" });
    await expectChallengeFailed(await mint({ turnstile_token: token() }, env));
  });

  for (const path of ["/down", "/garbage", "/hang"]) {
    it(`never mints while siteverify answers ${path === "/hang" ? "never" : path.slice(1)}`, async () => {
      const env = turnstileEnv({
        TURNSTILE_VERIFY_URL: new URL(path, inject("siteverifyUrl")).href,
      });
      await expectChallengeFailed(await mint({ turnstile_token: token() }, env));
    });
  }

  it("spends none of the address's mints on a failed challenge", async () => {
    const env = turnstileEnv({ ANON_SESSIONS_PER_IP_HOURLY: "1" });
    const ip = randomIp();
    for (let i = 0; i < 3; i++) {
      await expectChallengeFailed(await mint({ turnstile_token: token({ action: "x" }) }, env, ip));
    }
    expect((await mint({ turnstile_token: token() }, env, ip)).status).toBe(200);
    const third = await mint({ turnstile_token: token() }, env, ip);
    expect(third.status).toBe(429);
  });

  it("rejects a turnstile_token that is not a string of at most 2048 characters", async () => {
    for (const bad of [42, "", "x".repeat(2049)]) {
      const res = await mint({ turnstile_token: bad }, turnstileEnv());
      expect(res.status).toBe(422);
      expect(((await res.json()) as ErrorBody).fields).toEqual(["turnstile_token"]);
    }
  });

  it("is misconfigured with only one of the two keys", async () => {
    for (const env of [
      turnstileEnv({ TURNSTILE_SITE_KEY: "" }),
      turnstileEnv({ TURNSTILE_SECRET_KEY: "" }),
    ]) {
      const res = await mint({}, env);
      expect(res.status).toBe(500);
      expect(((await res.json()) as ErrorBody).error_code).toBe("misconfigured");
    }
  });
});

describe("the page with and without a site key", () => {
  const page = async (env: Bindings) => (await call("/magic/", {}, env)).res;

  it("carries the site key and admits the widget's script and frame when it is set", async () => {
    const res = await page(turnstileEnv());
    expect(res.status).toBe(200);
    const csp = res.headers.get("Content-Security-Policy") ?? "";
    expect(csp).toContain("script-src 'self' https://challenges.cloudflare.com");
    expect(csp).toContain("frame-src https://challenges.cloudflare.com");
    const html = await res.text();
    expect(html).toContain(`<meta name="turnstile-site-key" content="${TURNSTILE_TEST_SITE_KEY}">`);
  });

  it("names no site key and admits nothing of Cloudflare's without one", async () => {
    const res = await page(testEnv());
    const csp = res.headers.get("Content-Security-Policy") ?? "";
    expect(csp).not.toContain("challenges.cloudflare.com");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-src 'none'");
    expect(await res.text()).not.toContain("turnstile-site-key");
  });
});
