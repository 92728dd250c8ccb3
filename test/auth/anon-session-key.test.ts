/** @module The anonymous session key (SECRET_KEY): when minting works, when it is misconfigured, and what development does without one. */
import { describe, expect, it, vi } from "vitest";
import type { Bindings } from "../../src/env";
import type { ErrorBody } from "../../src/errors";
import { call, testEnv } from "../helpers/app";
import { expectUnauthorized, send } from "../helpers/auth";
import { freshIp, usageOfToken } from "../helpers/gate";
import { anonToken, SECRET_KEY, supabaseClaims, supabaseHs256 } from "../helpers/tokens";

describe("anonymous session key configuration", () => {
  /** A production env that is valid except for SECRET_KEY. */
  const production = (secret: string | undefined) =>
    testEnv({
      ENVIRONMENT: "production",
      SECRET_KEY: secret,
      OPENAI_BASE_URL: "https://api.openai.com/v1",
      // Production refuses plain-http addresses; the test env's point at loopback servers.
      SUPABASE_URL: "https://abcdefghijklmnop.supabase.co",
      SUPABASE_JWKS_URL: undefined,
    });
  const mint = async (env: Bindings) => {
    const { res, settled } = await call(
      "/api/v1/anon_session",
      { method: "POST", headers: { "Content-Type": "application/json" }, ip: freshIp() },
      env,
    );
    await settled();
    return res;
  };

  it("mints in production when SECRET_KEY is set (the control for the cases below)", async () => {
    const res = await mint(production(SECRET_KEY));
    expect(res.status).toBe(200);
  });

  it("answers 500 misconfigured in production without SECRET_KEY", async () => {
    const res = await mint(production(undefined));
    expect(res.status).toBe(500);
    const text = await res.text();
    expect((JSON.parse(text) as ErrorBody).error_code).toBe("misconfigured");
    expect(text).not.toMatch(/SECRET_KEY/);
  });

  it("answers 500 misconfigured in production with a SECRET_KEY of 31 bytes", async () => {
    const secret = "k".repeat(31);
    const res = await mint(production(secret));
    expect(res.status).toBe(500);
    const text = await res.text();
    expect((JSON.parse(text) as ErrorBody).error_code).toBe("misconfigured");
    expect(text).not.toContain(secret);
  });

  it("answers 500 misconfigured in production with a short SECRET_KEY", async () => {
    const res = await mint(production("short"));
    expect(res.status).toBe(500);
    expect(((await res.json()) as ErrorBody).error_code).toBe("misconfigured");
  });

  it("mints in production with a SECRET_KEY of exactly 32 bytes", async () => {
    const res = await mint(production("k".repeat(32)));
    expect(res.status).toBe(200);
  });

  it("refuses anonymous tokens with 401, not 500, in production without SECRET_KEY", async () => {
    const token = await anonToken();
    await expectUnauthorized(
      await send("GET /api/v1/usage", `Bearer ${token}`, production(undefined)),
      "invalid",
      token,
    );
  });

  it("still accepts Supabase tokens in production without SECRET_KEY", async () => {
    // HS256: production takes its key set over https only, and the local JWKS server is http.
    const claims = supabaseClaims({ iss: "https://abcdefghijklmnop.supabase.co/auth/v1" });
    const usage = await usageOfToken(await supabaseHs256(claims), production(undefined));
    expect(usage.anonymous).toBe(false);
  });

  it("mints with a random key in development without SECRET_KEY, and accepts what it minted", async () => {
    const env = testEnv({ SECRET_KEY: undefined });
    const res = await mint(env);
    expect(res.status).toBe(200);
    const { token } = (await res.json()) as { token: string };
    const usage = await usageOfToken(token, env);
    expect(usage.anonymous).toBe(true);
  });

  it("answers 500 misconfigured in development with a SECRET_KEY that is set but short, and logs why once", async () => {
    const lines: Record<string, unknown>[] = [];
    for (const level of ["log", "warn", "error"] as const) {
      vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
        lines.push(JSON.parse(args.map(String).join(" ")) as Record<string, unknown>);
      });
    }
    try {
      const env = testEnv({ SECRET_KEY: "short-dev-key" });
      for (let i = 0; i < 3; i++) {
        const res = await mint(env);
        expect(res.status).toBe(500);
        expect(((await res.json()) as ErrorBody).error_code).toBe("misconfigured");
      }
      // Never reported as "not set" nor replaced by a random key; said once, not per request.
      expect(lines.filter((l) => l.event === "dev_secret_key")).toEqual([]);
      const problems = lines.filter((l) => l.event === "misconfigured");
      expect(problems).toEqual([
        expect.objectContaining({ detail: "SECRET_KEY is shorter than 32 bytes" }),
      ]);
    } finally {
      vi.restoreAllMocks();
    }
  });

  it("logs a production's missing SECRET_KEY once per isolate, not on every mint", async () => {
    const errors: string[] = [];
    vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => {
      errors.push(args.map(String).join(" "));
    });
    vi.spyOn(console, "log").mockImplementation(() => {});
    try {
      const env = production(undefined);
      for (let i = 0; i < 3; i++) expect((await mint(env)).status).toBe(500);
      const problems = errors.filter((l) => l.includes('"event":"misconfigured"'));
      expect(problems).toHaveLength(1);
      expect(problems[0]).toContain("SECRET_KEY is not set");
    } finally {
      vi.restoreAllMocks();
    }
  });

  it("does not accept a token signed with the usual key when development runs on a random key", async () => {
    const token = await anonToken();
    await expectUnauthorized(
      await send("GET /api/v1/usage", `Bearer ${token}`, testEnv({ SECRET_KEY: undefined })),
      "invalid",
      token,
    );
  });
});
