/**
 * @module The Supabase key set: refetched on an unknown kid at most once per 30 s, and a key set
 * that is down on a cold start. The verifier takes its clock and its fetch as parameters, so
 * these tests move time by hand and count fetches themselves.
 */
import { describe, expect, it } from "vitest";
import { supabaseVerifier } from "../../src/auth/supabase-token";
import { parseConfig } from "../../src/config";
import { testEnv } from "../helpers/app";
import { usageOfToken } from "../helpers/gate";
import {
  anonToken,
  supabaseAsymmetric,
  supabaseClaims,
  supabaseHs256,
  uniqueJwksUrl,
} from "../helpers/tokens";

/** The network as the Worker sees it. */
const network: typeof fetch = (input, init) => fetch(input, init);

/**
 * A verifier of tokens whose key set is at `url` (a fresh key-set cache), on a clock the test
 * moves, fetching through `fetchImpl` and counting the fetches.
 */
function verifierOf(url: URL, fetchImpl = network) {
  let now = Date.now();
  let fetches = 0;
  const config = parseConfig(testEnv({ SUPABASE_JWKS_URL: url.href }));
  const verify = supabaseVerifier(config, {
    now: () => now,
    fetch: (input, init) => {
      fetches++;
      return fetchImpl(input, init);
    },
  });
  const advance = (ms: number) => {
    now += ms;
  };
  return { verify, advance, fetches: () => fetches };
}

/** An ES256 token signed by the published key under a `kid` the key set does not have. */
const unknownKid = () =>
  supabaseAsymmetric("ES256", supabaseClaims(), `kid-${crypto.randomUUID()}`);
const NO_MATCHING_KEY = { code: "ERR_JWKS_NO_MATCHING_KEY" };

describe("JWKS refetch on an unknown kid", () => {
  it("refetches the key set at most once per 30 s, even for a burst of unknown kids", async () => {
    const { verify, advance, fetches } = verifierOf(uniqueJwksUrl());
    const refused = async () =>
      expect(verify(await unknownKid())).rejects.toMatchObject(NO_MATCHING_KEY);

    // The first verification loads the key set.
    expect((await verify(await supabaseAsymmetric("ES256"))).isAnonymous).toBe(false);
    expect(fetches()).toBe(1);

    // Just loaded: an unknown kid does not refetch.
    await refused();
    expect(fetches()).toBe(1);

    // 31 s later: one refetch for a burst of unknown kids, however many arrive at once.
    advance(31_000);
    const burst = await Promise.all(Array.from({ length: 5 }, unknownKid));
    for (const answer of await Promise.allSettled(burst.map((token) => verify(token))))
      expect(answer).toMatchObject({ status: "rejected", reason: NO_MATCHING_KEY });
    expect(fetches()).toBe(2);
    await refused();
    expect(fetches()).toBe(2);

    // 20 s after that refetch: still cooling down.
    advance(20_000);
    await refused();
    expect(fetches()).toBe(2);

    // Past the cooldown: one more refetch, and known keys keep working throughout.
    advance(11_000);
    await refused();
    expect(fetches()).toBe(3);
    expect((await verify(await supabaseAsymmetric("RS256"))).isAnonymous).toBe(false);
    expect(fetches()).toBe(3);
  });

  it("fetches keys older than 10 minutes once again, not once per request", async () => {
    const { verify, advance, fetches } = verifierOf(uniqueJwksUrl());

    await verify(await supabaseAsymmetric("ES256"));
    expect(fetches()).toBe(1);
    advance(9 * 60_000);
    await verify(await supabaseAsymmetric("RS256"));
    expect(fetches()).toBe(1);

    advance(2 * 60_000);
    const tokens = await Promise.all([
      supabaseAsymmetric("ES256"),
      supabaseAsymmetric("RS256"),
      supabaseAsymmetric("ES256"),
    ]);
    const principals = await Promise.all(tokens.map((token) => verify(token)));
    expect(principals.every((p) => p.isAnonymous === false)).toBe(true);
    expect(fetches()).toBe(2);
  });
});

describe("a JWKS endpoint that is down on a cold start", () => {
  it("is fetched once per 5 s at most while it fails, and HS256 and anonymous tokens keep working", async () => {
    const url = uniqueJwksUrl();
    const down: typeof fetch = () => Promise.reject(new TypeError("connection refused"));
    const { verify, advance, fetches } = verifierOf(url, down);
    const refused = async () => expect(verify(await supabaseAsymmetric("ES256"))).rejects.toThrow();

    await refused();
    expect(fetches()).toBe(1);
    for (let i = 0; i < 5; i++) await refused();
    expect(fetches()).toBe(1);
    // The same verifier still takes HS256 tokens; anonymous ones never need the key set.
    expect((await verify(await supabaseHs256())).isAnonymous).toBe(false);
    const env = testEnv({ SUPABASE_JWKS_URL: url.href });
    expect((await usageOfToken(await anonToken(), env)).anonymous).toBe(true);

    advance(6_000);
    await refused();
    expect(fetches()).toBe(2);
  });
});
