/** @module Authentication in workerd: every way a token can be wrong is a 401, and each token kind works. */
import { afterEach, describe, expect, inject, it, vi } from "vitest";
import type { Bindings } from "../../src/env";
import type { ErrorBody } from "../../src/errors";
import { type Called, call, testEnv } from "../helpers/app";
import { parseEvents } from "../helpers/sse";
import {
  anonClaims,
  anonShaped,
  anonToken,
  b64url,
  bearer,
  hs256,
  jwksFetches,
  publicJwk,
  publicKeyForms,
  rawToken,
  SECRET_KEY,
  SUPABASE_JWT_SECRET,
  supabaseApiKeyClaims,
  supabaseAsymmetric,
  supabaseClaims,
  supabaseHs256,
  uniqueJwksUrl,
} from "../helpers/tokens";

const USAGE = "/api/v1/usage";
const STREAM = "/api/v1/stream";
const now = () => Math.floor(Date.now() / 1000);

/** Words of jose's (and of our own thrown) messages that a client must never read. */
const LEAKS =
  /JWS|JWK|JWT|JWE|claim|signature|Header Parameter|ERR_|timestamp|Compact|applicable key|Expected 200|bad sub|lifetime|algorithm not allowed|not a user token|not configured|HMAC|CryptoKey/;

interface Window {
  limit: number;
  remaining: number;
}
interface Usage {
  user_id: string;
  anonymous: boolean;
  limits: { user: Window; ip: Window };
  quota: { hourly: Window; total: Window } | null;
}

/** A random client address, so per-IP windows never meet another test's. */
function freshIp(): string {
  const octet = () => Math.floor(Math.random() * 254) + 1;
  return `10.${octet()}.${octet()}.${octet()}`;
}

type Target = "GET /api/v1/usage" | "POST /api/v1/stream" | "GET /api/v1/stream";
const TARGETS: Target[] = ["GET /api/v1/usage", "POST /api/v1/stream", "GET /api/v1/stream"];

/** Sends `authorization` (none when undefined) to one of the authenticated endpoints. */
async function send(
  target: Target,
  authorization: string | undefined,
  env: Bindings = testEnv(),
  extraHeaders: Record<string, string> = {},
): Promise<Response> {
  const headers: Record<string, string> = { ...extraHeaders };
  if (authorization !== undefined) headers.Authorization = authorization;
  const ip = freshIp();
  let called: Called;
  if (target === "GET /api/v1/usage") called = await call(USAGE, { headers, ip }, env);
  else if (target === "GET /api/v1/stream") {
    called = await call(`${STREAM}?message=hello`, { headers, ip }, env);
  } else {
    headers["Content-Type"] = "application/json";
    const body = JSON.stringify({ message: "hello" });
    called = await call(STREAM, { method: "POST", headers, body, ip }, env);
  }
  // Every use of send() expects a refusal or a JSON answer: no stream holds `settled` back.
  await called.settled();
  return called.res;
}

/** Asserts the contract's 401: status, code, WWW-Authenticate, and nothing leaked. */
async function expectUnauthorized(
  res: Response,
  kind: "missing" | "invalid",
  token?: string,
): Promise<ErrorBody> {
  const text = await res.text();
  expect(res.status).toBe(401);
  expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
  const body = JSON.parse(text) as ErrorBody;
  expect(body.error_code).toBe("unauthorized");
  expect(body.retry_after).toBeNull();
  expect(typeof body.detail).toBe("string");
  const www = res.headers.get("WWW-Authenticate");
  if (kind === "missing") expect(www).toMatch(/^Bearer realm="[^"]+"$/);
  else expect(www).toBe('Bearer error="invalid_token"');
  expect(text).not.toMatch(LEAKS);
  if (token) {
    expect(text).not.toContain(token);
    for (const segment of token.split(".")) {
      if (segment.length >= 8) expect(text).not.toContain(segment);
    }
  }
  return body;
}

/** GET /api/v1/usage with `token`; asserts 200 and returns the body. */
async function usageOf(token: string, env: Bindings = testEnv()): Promise<Usage> {
  const { res, settled } = await call(USAGE, { headers: bearer(token), ip: freshIp() }, env);
  await settled();
  expect(res.status).toBe(200);
  return (await res.json()) as Usage;
}

/** POST /api/v1/stream with `token`; asserts a 200 event stream that ends with `done`. */
async function expectStreams(token: string): Promise<void> {
  const { res, settled } = await call(STREAM, {
    method: "POST",
    headers: { ...bearer(token), "Content-Type": "application/json" },
    body: JSON.stringify({ message: "hello" }),
    ip: freshIp(),
  });
  expect(res.status).toBe(200);
  expect(res.headers.get("Content-Type")).toMatch(/^text\/event-stream/);
  const all = parseEvents(await res.text());
  await settled();
  expect(all.at(-1)?.event).toBe("done");
}

/** Swaps the payload segment of `token`, keeping its header and signature. */
function withPayload(token: string, payload: unknown): string {
  const [header, , signature] = token.split(".");
  return `${header}.${b64url(payload)}.${signature}`;
}

/** A Supabase HS256 token whose claims lack `name`. */
function supabaseWithout(name: "sub" | "exp" | "iat" | "role"): Promise<string> {
  const claims = supabaseClaims();
  delete claims[name];
  return supabaseHs256(claims);
}

/** One of our anonymous tokens whose claims lack `name`. */
function anonWithout(name: "sub" | "exp" | "iat"): Promise<string> {
  const claims = anonClaims();
  delete claims[name];
  return anonShaped(claims);
}

/** A valid Supabase HS256 token padded with an extra claim to exactly `length` header bytes, or just under. */
async function paddedAuthorization(length: number): Promise<string> {
  let pad = Math.floor(((length - 200) * 3) / 4);
  for (;;) {
    const header = `Bearer ${await supabaseHs256(supabaseClaims({ pad: "x".repeat(pad) }))}`;
    if (header.length <= length) return header;
    pad -= Math.max(1, Math.floor(((header.length - length) * 3) / 4));
  }
}

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

describe("failure responses", () => {
  it("tells the client that an expired token has expired, in its own words", async () => {
    const token = await supabaseHs256(supabaseClaims({ iat: now() - 7200, exp: now() - 60 }));
    const body = await expectUnauthorized(
      await send("GET /api/v1/usage", `Bearer ${token}`),
      "invalid",
      token,
    );
    expect(body.detail).toMatch(/expired/);
  });

  it("answers a missing token with one SSE error frame when the client accepts text/event-stream", async () => {
    const res = await send("GET /api/v1/stream", undefined, testEnv(), {
      Accept: "text/event-stream",
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("Content-Type")).toMatch(/^text\/event-stream/);
    expect(res.headers.get("WWW-Authenticate")).toMatch(/^Bearer realm="[^"]+"$/);
    const all = parseEvents(await res.text());
    expect(all).toHaveLength(1);
    expect(all[0]?.event).toBe("error");
    expect(all[0]?.data.error_code).toBe("unauthorized");
  });

  it("answers an invalid token with one SSE error frame on POST too", async () => {
    const token = await supabaseHs256(supabaseClaims(), SECRET_KEY);
    const res = await send("POST /api/v1/stream", `Bearer ${token}`, testEnv(), {
      Accept: "application/json;q=0.5, text/event-stream",
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("WWW-Authenticate")).toBe('Bearer error="invalid_token"');
    const text = await res.text();
    expect(text).not.toContain(token);
    const all = parseEvents(text);
    expect(all).toHaveLength(1);
    expect(all[0]?.event).toBe("error");
    expect(all[0]?.data.error_code).toBe("unauthorized");
  });

  it("answers 401, not 500, when the key set cannot be fetched", async () => {
    const env = testEnv({ SUPABASE_JWKS_URL: `${inject("supabaseUrl")}/no-such-key-set.json` });
    const token = await supabaseAsymmetric("ES256");
    await expectUnauthorized(
      await send("GET /api/v1/usage", `Bearer ${token}`, env),
      "invalid",
      token,
    );
  });
});

describe("Authorization header size", () => {
  it("accepts a valid token whose header is just under 8 KiB", async () => {
    const header = await paddedAuthorization(8 * 1024);
    expect(header.length).toBeGreaterThan(8 * 1024 - 64);
    const res = await send("GET /api/v1/usage", header);
    expect(res.status).toBe(200);
  });

  it("rejects a header of 8 KiB plus one byte before any verification", async () => {
    const header = await paddedAuthorization(8 * 1024);
    // One space more between scheme and token: the token itself is untouched and valid.
    const over = `Bearer ${" ".repeat(8 * 1024 + 1 - header.length)}${header.slice("Bearer ".length)}`;
    expect(over.length).toBe(8 * 1024 + 1);
    await expectUnauthorized(await send("GET /api/v1/usage", over), "invalid", header.slice(7));
  });

  it("rejects a 64 KiB header with 401, not 500", async () => {
    const res = await send("GET /api/v1/usage", `Bearer ${"a".repeat(64 * 1024)}.b.c`);
    await expectUnauthorized(res, "invalid");
  });
});

describe("accepted tokens", () => {
  it("accepts a Supabase HS256 token as a signed-in user", async () => {
    const claims = supabaseClaims();
    const usage = await usageOf(await supabaseHs256(claims));
    expect(usage.user_id).toBe(claims.sub);
    expect(usage.anonymous).toBe(false);
    expect(usage.quota).toBeNull();
  });

  for (const alg of ["ES256", "RS256"] as const) {
    it(`accepts a Supabase ${alg} token verified through the JWKS`, async () => {
      const claims = supabaseClaims();
      const usage = await usageOf(await supabaseAsymmetric(alg, claims));
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
    const usage = await usageOf(await anonToken());
    expect(usage.anonymous).toBe(true);
    expect(usage.user_id).toMatch(/^anon_[0-9a-f-]{36}$/);
    expect(usage.quota).toMatchObject({
      hourly: { limit: expect.any(Number), remaining: expect.any(Number) },
      total: { limit: expect.any(Number), remaining: expect.any(Number) },
    });
  });

  it("treats a Supabase token with is_anonymous: true as anonymous", async () => {
    const claims = supabaseClaims({ is_anonymous: true });
    const usage = await usageOf(await supabaseHs256(claims));
    expect(usage.user_id).toBe(claims.sub);
    expect(usage.anonymous).toBe(true);
    expect(usage.quota).not.toBeNull();
    expect(usage.quota?.total.remaining).toBe(usage.quota?.total.limit);
  });

  it("treats an ES256 Supabase token with is_anonymous: true as anonymous", async () => {
    const usage = await usageOf(
      await supabaseAsymmetric("ES256", supabaseClaims({ is_anonymous: true })),
    );
    expect(usage.anonymous).toBe(true);
    expect(usage.quota).not.toBeNull();
  });

  it("does not treat a truthy non-boolean is_anonymous as anonymous", async () => {
    const usage = await usageOf(await supabaseHs256(supabaseClaims({ is_anonymous: "false" })));
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
    const usage = await usageOf(token, env);
    expect(usage.anonymous).toBe(true);
  });
});

describe("when SECRET_KEY equals SUPABASE_JWT_SECRET", () => {
  const shared = () => testEnv({ SECRET_KEY: SUPABASE_JWT_SECRET });

  it("still treats our anonymous token as anonymous, never as a signed-in user", async () => {
    const usage = await usageOf(await anonToken(3600, SUPABASE_JWT_SECRET), shared());
    expect(usage.anonymous).toBe(true);
    expect(usage.user_id).toMatch(/^anon_/);
  });

  it("still treats a Supabase user token as a signed-in user", async () => {
    const claims = supabaseClaims();
    const usage = await usageOf(await supabaseHs256(claims, SUPABASE_JWT_SECRET), shared());
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
    const usage = await usageOf(await supabaseAsymmetric("RS256"), noIssuer());
    expect(usage.anonymous).toBe(false);
  });
});

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
    await usageOf(await supabaseAsymmetric("ES256"), env);
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
    await usageOf(await supabaseAsymmetric("RS256"), env);
    expect(await fetches()).toBe(3);
  });

  it("fetches keys older than 10 minutes once again, not once per request", async () => {
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
    const url = uniqueJwksUrl();
    const env = testEnv({ SUPABASE_JWKS_URL: url.href });
    const fetches = () => jwksFetches(url.pathname);

    await usageOf(await supabaseAsymmetric("ES256"), env);
    expect(await fetches()).toBe(1);
    vi.setSystemTime(Date.now() + 9 * 60_000);
    await usageOf(await supabaseAsymmetric("RS256"), env);
    expect(await fetches()).toBe(1);

    vi.setSystemTime(Date.now() + 2 * 60_000);
    const tokens = await Promise.all([
      supabaseAsymmetric("ES256"),
      supabaseAsymmetric("RS256"),
      supabaseAsymmetric("ES256"),
    ]);
    const results = await Promise.all(tokens.map((t) => usageOf(t, env)));
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
    expect((await usageOf(await supabaseHs256(), env)).anonymous).toBe(false);
    expect((await usageOf(await anonToken(), env)).anonymous).toBe(true);

    vi.setSystemTime(Date.now() + 6_000);
    await expectUnauthorized(await es256(), "invalid");
    expect(await fetches()).toBe(2);
  });
});

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
    const usage = await usageOf(await supabaseHs256(claims), production(undefined));
    expect(usage.anonymous).toBe(false);
  });

  it("mints with a random key in development without SECRET_KEY, and accepts what it minted", async () => {
    const env = testEnv({ SECRET_KEY: undefined });
    const res = await mint(env);
    expect(res.status).toBe(200);
    const { token } = (await res.json()) as { token: string };
    const usage = await usageOf(token, env);
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

describe("verified tokens (per isolate)", () => {
  it("are hit only by the very same token: one changed signature character is refused right after", async () => {
    const env = testEnv();
    const token = await supabaseHs256(supabaseClaims());
    expect((await call(USAGE, { headers: bearer(token) }, env)).res.status).toBe(200);
    // A character in the middle of the signature: the last one carries spare bits a base64url
    // decoder may ignore, so changing it does not always change the signature.
    const at = token.length - 10;
    const forged = `${token.slice(0, at)}${token[at] === "A" ? "Q" : "A"}${token.slice(at + 1)}`;
    const refused = await call(USAGE, { headers: bearer(forged) }, env);
    expect(refused.res.status).toBe(401);
    expect((await call(USAGE, { headers: bearer(token) }, env)).res.status).toBe(200);
  });

  it("keep an entry for 60 s at most and never past the token's exp, and at most 1,000, oldest out first", async () => {
    const { VerifiedTokens } = await import("../../src/auth/verified-tokens");
    const { principal } = await import("../../src/auth/principal");
    const t0 = 1_800_000_000_000;
    const memo = new VerifiedTokens(60_000, 3);
    const soon = principal("supabase", "a", false, t0 / 1000 + 10);
    const later = principal("supabase", "b", false, t0 / 1000 + 3600);
    memo.set("soon", soon, t0);
    memo.set("later", later, t0);
    expect(memo.get("soon", t0 + 9_999)).toBe(soon);
    expect(memo.get("soon", t0 + 10_000)).toBeUndefined();
    expect(memo.get("later", t0 + 59_999)).toBe(later);
    expect(memo.get("later", t0 + 60_000)).toBeUndefined();
    // Already expired: never kept.
    memo.set("expired", principal("supabase", "c", false, t0 / 1000 - 1), t0);
    expect(memo.get("expired", t0)).toBeUndefined();
    // Bounded: the oldest entry goes first.
    for (const k of ["k1", "k2", "k3"]) memo.set(k, later, t0);
    memo.set("k4", later, t0);
    expect(memo.size).toBe(3);
    expect(memo.get("k1", t0)).toBeUndefined();
    expect(memo.get("k2", t0)).toBe(later);
    expect(memo.get("k4", t0)).toBe(later);
  });
});
