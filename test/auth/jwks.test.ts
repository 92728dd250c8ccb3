/** @module The Supabase key set: refetched on an unknown kid at most once per 30 s, and a key set that is down on a cold start. */
import { afterEach, describe, expect, inject, it, vi } from "vitest";
import { testEnv } from "../helpers/app";
import { expectUnauthorized, send } from "../helpers/auth";
import { usageOfToken } from "../helpers/gate";
import {
  anonToken,
  jwksFetches,
  supabaseAsymmetric,
  supabaseClaims,
  supabaseHs256,
  uniqueJwksUrl,
} from "../helpers/tokens";

describe("JWKS refetch on an unknown kid", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("refetches the key set at most once per 30 s, even for a burst of unknown kids", async () => {
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
    const url = uniqueJwksUrl();
    const env = testEnv({ SUPABASE_JWKS_URL: url.href });
    const fetches = () => jwksFetches(url.pathname);
    const unknownKid = async () =>
      send(
        "GET /api/v1/usage",
        `Bearer ${await supabaseAsymmetric("ES256", supabaseClaims(), `kid-${crypto.randomUUID()}`)}`,
        env,
      );

    // The first verification loads the key set.
    await usageOfToken(await supabaseAsymmetric("ES256"), env);
    expect(await fetches()).toBe(1);

    // Just loaded: an unknown kid does not refetch.
    await expectUnauthorized(await unknownKid(), "invalid");
    expect(await fetches()).toBe(1);

    // 31 s later: one refetch for a burst of unknown kids, however many arrive at once.
    vi.setSystemTime(Date.now() + 31_000);
    const burst = await Promise.all(Array.from({ length: 5 }, unknownKid));
    for (const res of burst) await expectUnauthorized(res, "invalid");
    expect(await fetches()).toBe(2);
    await expectUnauthorized(await unknownKid(), "invalid");
    expect(await fetches()).toBe(2);

    // 20 s after that refetch: still cooling down.
    vi.setSystemTime(Date.now() + 20_000);
    await expectUnauthorized(await unknownKid(), "invalid");
    expect(await fetches()).toBe(2);

    // Past the cooldown: one more refetch, and known keys keep working throughout.
    vi.setSystemTime(Date.now() + 11_000);
    await expectUnauthorized(await unknownKid(), "invalid");
    expect(await fetches()).toBe(3);
    await usageOfToken(await supabaseAsymmetric("RS256"), env);
    expect(await fetches()).toBe(3);
  });

  it("fetches keys older than 10 minutes once again, not once per request", async () => {
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
    const url = uniqueJwksUrl();
    const env = testEnv({ SUPABASE_JWKS_URL: url.href });
    const fetches = () => jwksFetches(url.pathname);

    await usageOfToken(await supabaseAsymmetric("ES256"), env);
    expect(await fetches()).toBe(1);
    vi.setSystemTime(Date.now() + 9 * 60_000);
    await usageOfToken(await supabaseAsymmetric("RS256"), env);
    expect(await fetches()).toBe(1);

    vi.setSystemTime(Date.now() + 2 * 60_000);
    const tokens = await Promise.all([
      supabaseAsymmetric("ES256"),
      supabaseAsymmetric("RS256"),
      supabaseAsymmetric("ES256"),
    ]);
    const results = await Promise.all(tokens.map((t) => usageOfToken(t, env)));
    expect(results.every((u) => u.anonymous === false)).toBe(true);
    expect(await fetches()).toBe(2);
  });
});

describe("a JWKS endpoint that is down on a cold start", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("is fetched once per 5 s at most while it fails, and HS256 and anonymous tokens keep working", async () => {
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
    const url = new URL(
      `/down-${crypto.randomUUID()}/auth/v1/.well-known/jwks.json`,
      inject("supabaseUrl"),
    );
    const env = testEnv({ SUPABASE_JWKS_URL: url.href });
    const fetches = () => jwksFetches(url.pathname);
    const es256 = async () =>
      send("GET /api/v1/usage", `Bearer ${await supabaseAsymmetric("ES256")}`, env);

    await expectUnauthorized(await es256(), "invalid");
    expect(await fetches()).toBe(1);
    for (let i = 0; i < 5; i++) await expectUnauthorized(await es256(), "invalid");
    expect(await fetches()).toBe(1);
    expect((await usageOfToken(await supabaseHs256(), env)).anonymous).toBe(false);
    expect((await usageOfToken(await anonToken(), env)).anonymous).toBe(true);

    vi.setSystemTime(Date.now() + 6_000);
    await expectUnauthorized(await es256(), "invalid");
    expect(await fetches()).toBe(2);
  });
});
