/** @module Every way a token can be wrong is a 401 on every authenticated endpoint, and no algorithm can be swapped for another. */
import { describe, expect, it } from "vitest";
import {
  anonWithout,
  expectUnauthorized,
  now,
  send,
  supabaseWithout,
  TARGETS,
  withPayload,
} from "../helpers/auth";
import {
  anonClaims,
  anonShaped,
  anonToken,
  hs256,
  publicJwk,
  publicKeyForms,
  rawToken,
  SECRET_KEY,
  SUPABASE_JWT_SECRET,
  supabaseApiKeyClaims,
  supabaseAsymmetric,
  supabaseClaims,
  supabaseHs256,
} from "../helpers/tokens";

interface Case {
  name: string;
  /** The Authorization header to send; undefined sends none. */
  authorization: () => Promise<string | undefined>;
  /** Whether the 401 is the "no token" kind (`Bearer realm=...`). */
  missing?: boolean;
}

const asBearer = (token: Promise<string> | string) => async () => `Bearer ${await token}`;
const NONE_VARIANTS = ["none", "None", "NONE", "nOnE"];

const CASES: Case[] = [
  {
    name: "rejects a request without an Authorization header",
    authorization: async () => undefined,
    missing: true,
  },
  {
    name: "rejects an empty Authorization header as a missing token",
    authorization: async () => "",
    missing: true,
  },
  { name: "rejects a bare word as the Authorization header", authorization: async () => "garbage" },
  { name: "rejects a Bearer token that is not a JWT", authorization: async () => "Bearer garbage" },
  { name: "rejects the Bearer scheme without a token", authorization: async () => "Bearer" },
  {
    name: "rejects three segments that are not base64url JSON",
    authorization: async () => "Bearer abc.def.ghi",
  },
  {
    name: "rejects a JWT made of empty JSON objects",
    authorization: asBearer(rawToken({}, {}, "e30")),
  },
  {
    name: "rejects Basic credentials",
    authorization: async () => `Basic ${btoa("user:password")}`,
  },
  {
    name: "rejects a valid token sent without the Bearer scheme",
    authorization: async () => supabaseHs256(),
  },
  {
    name: "rejects a valid token followed by a second one",
    authorization: async () => `Bearer ${await supabaseHs256()} ${await supabaseHs256()}`,
  },
  {
    name: "rejects a five-segment (JWE-shaped) token",
    authorization: asBearer(`${await supabaseHs256()}.AAAA.BBBB`),
  },
  ...NONE_VARIANTS.flatMap((alg): Case[] => [
    {
      name: `rejects an unsigned Supabase-shaped token whose alg is "${alg}"`,
      authorization: asBearer(rawToken({ alg, typ: "JWT" }, supabaseClaims())),
    },
    {
      name: `rejects a Supabase-shaped token whose alg is "${alg}" with a made-up signature`,
      authorization: asBearer(rawToken({ alg, typ: "JWT" }, supabaseClaims(), "c2lnbmF0dXJl")),
    },
    {
      name: `rejects an anonymous-shaped token whose alg is "${alg}"`,
      authorization: asBearer(rawToken({ alg, typ: "anon+jwt" }, anonClaims(), "c2lnbmF0dXJl")),
    },
  ]),
  {
    name: "rejects a Supabase HS256 token whose payload was changed after signing",
    authorization: async () =>
      `Bearer ${withPayload(await supabaseHs256(), supabaseClaims({ sub: "someone-else" }))}`,
  },
  {
    name: "rejects an ES256 token whose payload was changed after signing",
    authorization: async () =>
      `Bearer ${withPayload(await supabaseAsymmetric("ES256"), supabaseClaims({ role: "authenticated", sub: "admin" }))}`,
  },
  {
    name: "rejects an anonymous token whose payload was changed after signing",
    authorization: async () =>
      `Bearer ${withPayload(await anonToken(), anonClaims({ exp: now() + 10 * 365 * 86_400 }))}`,
  },
  {
    name: "rejects a token carrying another token's signature",
    authorization: async () => {
      const [header, payload] = (await supabaseHs256()).split(".");
      const signature = (await supabaseHs256()).split(".")[2];
      return `Bearer ${header}.${payload}.${signature}`;
    },
  },
  {
    name: "rejects a Supabase HS256 token with its signature stripped",
    authorization: async () => `Bearer ${(await supabaseHs256()).replace(/\.[^.]+$/, ".")}`,
  },
  {
    name: "rejects an RS256 token with its signature segment removed",
    authorization: async () =>
      `Bearer ${(await supabaseAsymmetric("RS256")).replace(/\.[^.]+$/, "")}`,
  },
  {
    name: "rejects an anonymous token with its signature stripped",
    authorization: async () => `Bearer ${(await anonToken()).replace(/\.[^.]+$/, ".")}`,
  },
  {
    name: "rejects an expired Supabase HS256 token",
    authorization: asBearer(supabaseHs256(supabaseClaims({ iat: now() - 7200, exp: now() - 60 }))),
  },
  {
    name: "rejects an expired ES256 token",
    authorization: asBearer(
      supabaseAsymmetric("ES256", supabaseClaims({ iat: now() - 7200, exp: now() - 60 })),
    ),
  },
  {
    name: "rejects an expired anonymous token",
    authorization: asBearer(
      anonShaped(anonClaims({ iat: now() - 7200, nbf: now() - 7200, exp: now() - 60 })),
    ),
  },
  {
    name: "rejects a Supabase token whose nbf is in the future",
    authorization: asBearer(supabaseHs256(supabaseClaims({ nbf: now() + 300 }))),
  },
  {
    name: "rejects an anonymous token whose nbf is in the future",
    authorization: asBearer(anonShaped(anonClaims({ nbf: now() + 300 }))),
  },
  {
    name: "rejects an anonymous token issued in the future",
    authorization: asBearer(anonShaped(anonClaims({ iat: now() + 300, exp: now() + 3600 }))),
  },
  {
    name: "rejects a Supabase token from another project (wrong issuer)",
    authorization: asBearer(
      supabaseHs256(supabaseClaims({ iss: "https://evil.supabase.co/auth/v1" })),
    ),
  },
  {
    name: "rejects a Supabase token without an issuer",
    authorization: asBearer(supabaseHs256(supabaseClaims({ iss: undefined }))),
  },
  {
    name: "rejects an ES256 token with the wrong issuer",
    authorization: asBearer(
      supabaseAsymmetric("ES256", supabaseClaims({ iss: "https://evil.supabase.co/auth/v1" })),
    ),
  },
  {
    name: "rejects an anonymous token with another issuer",
    authorization: asBearer(anonShaped(anonClaims({ iss: "urn:someone:else" }))),
  },
  {
    name: "rejects a Supabase token for another audience",
    authorization: asBearer(supabaseHs256(supabaseClaims({ aud: "service" }))),
  },
  {
    name: "rejects a Supabase token without an audience",
    authorization: asBearer(supabaseHs256(supabaseClaims({ aud: undefined }))),
  },
  {
    name: "rejects an RS256 token for another audience",
    authorization: asBearer(supabaseAsymmetric("RS256", supabaseClaims({ aud: ["other"] }))),
  },
  {
    name: "rejects an anonymous token for another audience",
    authorization: asBearer(anonShaped(anonClaims({ aud: "authenticated" }))),
  },
  ...(["ES256", "RS256"] as const).flatMap((alg): Case[] => [
    {
      name: `rejects an HS256 token signed with the ${alg} public JWK as served (algorithm confusion)`,
      authorization: async () => {
        const served = (await publicKeyForms(alg)).find((f) => f.form === "JWK JSON as served");
        if (!served) throw new Error("the served JWK is missing");
        return `Bearer ${await hs256(supabaseClaims(), served.secret, { kid: publicJwk(alg).kid })}`;
      },
    },
  ]),
  {
    name: "rejects an HS512 token even when it is signed with the right secret",
    authorization: asBearer(hs256(supabaseClaims(), SUPABASE_JWT_SECRET, { alg: "HS512" })),
  },
  {
    name: "rejects an ES256 token whose kid is unknown",
    authorization: asBearer(supabaseAsymmetric("ES256", supabaseClaims(), "unknown-kid")),
  },
  {
    name: "rejects an RS256 token whose kid is unknown",
    authorization: asBearer(supabaseAsymmetric("RS256", supabaseClaims(), "unknown-kid")),
  },
  {
    name: "rejects an ES256 signature presented under the RS256 key's kid",
    authorization: asBearer(supabaseAsymmetric("ES256", supabaseClaims(), publicJwk("RS256").kid)),
  },
  {
    name: "rejects our anonymous claims sent down the Supabase path (typ JWT, signed with SECRET_KEY)",
    authorization: asBearer(anonShaped(anonClaims(), SECRET_KEY, "JWT")),
  },
  {
    name: "rejects an anonymous token (issuer, audience, typ) signed with SUPABASE_JWT_SECRET",
    authorization: asBearer(anonShaped(anonClaims(), SUPABASE_JWT_SECRET)),
  },
  {
    name: "rejects a Supabase-shaped token signed with SECRET_KEY",
    authorization: asBearer(supabaseHs256(supabaseClaims(), SECRET_KEY)),
  },
  {
    name: "rejects Supabase claims presented with the anonymous typ",
    authorization: asBearer(anonShaped(supabaseClaims(), SUPABASE_JWT_SECRET)),
  },
  {
    name: "rejects the Supabase anon API key",
    authorization: asBearer(supabaseHs256(supabaseApiKeyClaims("anon"))),
  },
  {
    name: "rejects the Supabase service_role API key",
    authorization: asBearer(supabaseHs256(supabaseApiKeyClaims("service_role"))),
  },
  {
    name: "rejects a Supabase API key given a user audience but no sub",
    authorization: asBearer(
      supabaseHs256({ ...supabaseApiKeyClaims("service_role"), aud: "authenticated" }),
    ),
  },
  {
    name: "rejects a Supabase token whose role is anon",
    authorization: asBearer(supabaseHs256(supabaseClaims({ role: "anon" }))),
  },
  {
    name: "rejects a Supabase token whose role is service_role",
    authorization: asBearer(supabaseHs256(supabaseClaims({ role: "service_role" }))),
  },
  {
    name: "rejects an ES256 token whose role is service_role",
    authorization: asBearer(supabaseAsymmetric("ES256", supabaseClaims({ role: "service_role" }))),
  },
  {
    name: "rejects a Supabase token without a role",
    authorization: asBearer(supabaseWithout("role")),
  },
  { name: "rejects a Supabase token without sub", authorization: asBearer(supabaseWithout("sub")) },
  { name: "rejects a Supabase token without exp", authorization: asBearer(supabaseWithout("exp")) },
  { name: "rejects a Supabase token without iat", authorization: asBearer(supabaseWithout("iat")) },
  {
    name: "rejects a Supabase token issued in the future",
    authorization: asBearer(
      supabaseHs256(supabaseClaims({ iat: Math.floor(Date.now() / 1000) + 600 })),
    ),
  },
  {
    name: "rejects a Supabase token with an empty sub",
    authorization: asBearer(supabaseHs256(supabaseClaims({ sub: "" }))),
  },
  {
    name: "rejects a Supabase token with a 129-character sub",
    authorization: asBearer(supabaseHs256(supabaseClaims({ sub: "u".repeat(129) }))),
  },
  { name: "rejects an anonymous token without sub", authorization: asBearer(anonWithout("sub")) },
  { name: "rejects an anonymous token without exp", authorization: asBearer(anonWithout("exp")) },
  { name: "rejects an anonymous token without iat", authorization: asBearer(anonWithout("iat")) },
  {
    name: "rejects an anonymous token whose sub is not one we mint",
    authorization: asBearer(anonShaped(anonClaims({ sub: "admin" }))),
  },
  {
    name: "rejects an anonymous token that claims a lifetime beyond the maximum",
    authorization: asBearer(anonShaped(anonClaims({ exp: now() + 604_800 + 60 }))),
  },
  {
    name: "rejects an anonymous token signed with another key",
    authorization: asBearer(anonToken(3600, "another-secret-key-of-at-least-32-bytes")),
  },
  {
    name: "rejects an Authorization header over 8 KiB even when its token is valid",
    authorization: async () => {
      const header = `Bearer ${await supabaseHs256(supabaseClaims({ pad: "x".repeat(8 * 1024) }))}`;
      expect(header.length).toBeGreaterThan(8 * 1024);
      return header;
    },
  },
];

describe.each(TARGETS)("%s", (target) => {
  for (const c of CASES) {
    it(c.name, async () => {
      const authorization = await c.authorization();
      const res = await send(target, authorization);
      const token = authorization?.match(/^Bearer +(.+)$/i)?.[1];
      await expectUnauthorized(res, c.missing ? "missing" : "invalid", token);
    });
  }
});

describe("algorithm confusion", () => {
  for (const alg of ["ES256", "RS256"] as const) {
    it(`rejects HS256 tokens signed with every published form of the ${alg} public key`, async () => {
      const forms = await publicKeyForms(alg);
      expect(forms.length).toBeGreaterThan(5);
      for (const { form, secret } of forms) {
        for (const header of [{}, { kid: publicJwk(alg).kid }, { typ: "anon+jwt" }]) {
          for (const claims of [supabaseClaims(), anonClaims()]) {
            const token = await hs256(claims, secret, header);
            const res = await send("GET /api/v1/usage", `Bearer ${token}`);
            expect(res.status, `${form} ${JSON.stringify(header)}`).toBe(401);
            await expectUnauthorized(res, "invalid", token);
          }
        }
      }
    });
  }
});
