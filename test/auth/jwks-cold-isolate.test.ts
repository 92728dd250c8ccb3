/** @module A cold isolate's key set: a burst of forged ES256 tokens makes one JWKS fetch, not one each. */
import { generateKeyPair, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { call, testEnv } from "../helpers/app";
import { jwksFetches, supabaseClaims, uniqueJwksUrl } from "../helpers/tokens";

/** An ES256 token with the published kid, signed by a key the JWKS never published. */
async function forgedEs256(): Promise<string> {
  const { privateKey } = await generateKeyPair("ES256");
  return new SignJWT(supabaseClaims())
    .setProtectedHeader({ alg: "ES256", typ: "JWT", kid: "es256-test-key" })
    .sign(privateKey);
}

describe("the JWKS on a cold isolate", () => {
  it("is fetched once for 20 concurrent forged ES256 tokens, and every one is refused", async () => {
    // A JWKS address this isolate has never seen: its key-set cache starts empty.
    const url = uniqueJwksUrl();
    const env = testEnv({ SUPABASE_JWKS_URL: url.href });
    const tokens = await Promise.all(Array.from({ length: 20 }, forgedEs256));
    const answers = await Promise.all(
      tokens.map(async (token, i) => {
        const { res, settled } = await call(
          "/api/v1/usage",
          { headers: { Authorization: `Bearer ${token}` }, ip: `10.20.0.${i + 1}` },
          env,
        );
        await settled();
        return res.status;
      }),
    );
    expect(answers).toEqual(Array.from({ length: 20 }, () => 401));
    expect(await jwksFetches(url.pathname)).toBe(1);
  });
});
