/** @module Each token kind is accepted as the caller it names: Supabase users, anonymous sign-ins, our anonymous tokens, also when the two secrets are one or there is no issuer. */
import { describe, expect, it } from "vitest";
import { call, testEnv } from "../helpers/app";
import { expectStreams, expectUnauthorized, send, USAGE } from "../helpers/auth";
import { freshIp, type Usage, usageOfToken } from "../helpers/gate";
import {
  anonClaims,
  anonShaped,
  anonToken,
  hs256,
  SUPABASE_JWT_SECRET,
  supabaseApiKeyClaims,
  supabaseAsymmetric,
  supabaseClaims,
  supabaseHs256,
} from "../helpers/tokens";

describe("accepted tokens", () => {
  it("accepts a Supabase HS256 token as a signed-in user", async () => {
    const claims = supabaseClaims();
    const usage = await usageOfToken(await supabaseHs256(claims));
    expect(usage.user_id).toBe(claims.sub);
    expect(usage.anonymous).toBe(false);
    expect(usage.quota).toBeNull();
  });

  for (const alg of ["ES256", "RS256"] as const) {
    it(`accepts a Supabase ${alg} token verified through the JWKS`, async () => {
      const claims = supabaseClaims();
      const usage = await usageOfToken(await supabaseAsymmetric(alg, claims));
      expect(usage.user_id).toBe(claims.sub);
      expect(usage.anonymous).toBe(false);
      expect(usage.quota).toBeNull();
    });

    it(`streams for a Supabase ${alg} token`, async () => {
      await expectStreams(await supabaseAsymmetric(alg));
    });
  }

  it("accepts the Bearer scheme in any letter case", async () => {
    const claims = supabaseClaims();
    const { res, settled } = await call(USAGE, {
      headers: { Authorization: `bEaReR ${await supabaseHs256(claims)}` },
      ip: freshIp(),
    });
    await settled();
    expect(res.status).toBe(200);
    expect(((await res.json()) as Usage).user_id).toBe(claims.sub);
  });

  it("accepts our own anonymous token as an anonymous caller with a quota", async () => {
    const usage = await usageOfToken(await anonToken());
    expect(usage.anonymous).toBe(true);
    expect(usage.user_id).toMatch(/^anon_[0-9a-f-]{36}$/);
    expect(usage.quota).toMatchObject({
      hourly: { limit: expect.any(Number), remaining: expect.any(Number) },
      total: { limit: expect.any(Number), remaining: expect.any(Number) },
    });
  });

  it("treats a Supabase token with is_anonymous: true as anonymous", async () => {
    const claims = supabaseClaims({ is_anonymous: true });
    const usage = await usageOfToken(await supabaseHs256(claims));
    expect(usage.user_id).toBe(claims.sub);
    expect(usage.anonymous).toBe(true);
    expect(usage.quota).not.toBeNull();
    expect(usage.quota?.total.remaining).toBe(usage.quota?.total.limit);
  });

  it("treats an ES256 Supabase token with is_anonymous: true as anonymous", async () => {
    const usage = await usageOfToken(
      await supabaseAsymmetric("ES256", supabaseClaims({ is_anonymous: true })),
    );
    expect(usage.anonymous).toBe(true);
    expect(usage.quota).not.toBeNull();
  });

  it("does not treat a truthy non-boolean is_anonymous as anonymous", async () => {
    const usage = await usageOfToken(
      await supabaseHs256(supabaseClaims({ is_anonymous: "false" })),
    );
    expect(usage.anonymous).toBe(false);
  });

  it("streams for a Supabase HS256 token", async () => {
    await expectStreams(await supabaseHs256());
  });

  it("streams for an anonymous token", async () => {
    await expectStreams(await anonToken());
  });

  it("streams for a Supabase anonymous sign-in", async () => {
    await expectStreams(await supabaseHs256(supabaseClaims({ is_anonymous: true })));
  });

  it("accepts a token minted by POST /api/v1/anon_session", async () => {
    const env = testEnv();
    const { res, settled } = await call(
      "/api/v1/anon_session",
      { method: "POST", headers: { "Content-Type": "application/json" }, ip: freshIp() },
      env,
    );
    await settled();
    expect(res.status).toBe(200);
    const { token } = (await res.json()) as { token: string };
    const usage = await usageOfToken(token, env);
    expect(usage.anonymous).toBe(true);
  });
});

describe("when SECRET_KEY equals SUPABASE_JWT_SECRET", () => {
  const shared = () => testEnv({ SECRET_KEY: SUPABASE_JWT_SECRET });

  it("still treats our anonymous token as anonymous, never as a signed-in user", async () => {
    const usage = await usageOfToken(await anonToken(3600, SUPABASE_JWT_SECRET), shared());
    expect(usage.anonymous).toBe(true);
    expect(usage.user_id).toMatch(/^anon_/);
  });

  it("still treats a Supabase user token as a signed-in user", async () => {
    const claims = supabaseClaims();
    const usage = await usageOfToken(await supabaseHs256(claims, SUPABASE_JWT_SECRET), shared());
    expect(usage.anonymous).toBe(false);
    expect(usage.user_id).toBe(claims.sub);
  });

  it("rejects our anonymous claims sent down the Supabase path", async () => {
    const token = await anonShaped(anonClaims(), SUPABASE_JWT_SECRET, "JWT");
    await expectUnauthorized(
      await send("GET /api/v1/usage", `Bearer ${token}`, shared()),
      "invalid",
      token,
    );
  });

  it("rejects our anonymous claims without a typ", async () => {
    const token = await hs256(anonClaims(), SUPABASE_JWT_SECRET, { typ: undefined });
    await expectUnauthorized(
      await send("GET /api/v1/usage", `Bearer ${token}`, shared()),
      "invalid",
      token,
    );
  });

  it("rejects Supabase user claims presented with the anonymous typ", async () => {
    const token = await anonShaped(supabaseClaims(), SUPABASE_JWT_SECRET);
    await expectUnauthorized(
      await send("POST /api/v1/stream", `Bearer ${token}`, shared()),
      "invalid",
      token,
    );
  });

  it("rejects Supabase anonymous sign-in claims presented with the anonymous typ", async () => {
    const token = await anonShaped(supabaseClaims({ is_anonymous: true }), SUPABASE_JWT_SECRET);
    await expectUnauthorized(
      await send("GET /api/v1/usage", `Bearer ${token}`, shared()),
      "invalid",
      token,
    );
  });

  it("rejects the Supabase service_role API key", async () => {
    const token = await supabaseHs256(supabaseApiKeyClaims("service_role"));
    await expectUnauthorized(
      await send("GET /api/v1/usage", `Bearer ${token}`, shared()),
      "invalid",
      token,
    );
  });
});

describe("without SUPABASE_URL (no issuer to check)", () => {
  const noIssuer = () => testEnv({ SUPABASE_URL: undefined });

  it("still rejects the Supabase API keys", async () => {
    for (const role of ["anon", "service_role"] as const) {
      const token = await supabaseHs256(supabaseApiKeyClaims(role));
      await expectUnauthorized(
        await send("GET /api/v1/usage", `Bearer ${token}`, noIssuer()),
        "invalid",
        token,
      );
    }
  });

  it("still rejects a token whose role is not authenticated", async () => {
    const token = await supabaseHs256(supabaseClaims({ role: "service_role" }));
    await expectUnauthorized(
      await send("GET /api/v1/usage", `Bearer ${token}`, noIssuer()),
      "invalid",
      token,
    );
  });

  it("accepts a user token verified through the JWKS", async () => {
    const usage = await usageOfToken(await supabaseAsymmetric("RS256"), noIssuer());
    expect(usage.anonymous).toBe(false);
  });
});
