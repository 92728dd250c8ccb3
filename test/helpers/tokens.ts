/** @module Signs the tokens the tests present: Supabase-shaped (HS256, ES256, RS256) and anonymous. */
import { importJWK, type JWTPayload, SignJWT } from "jose";
import { inject } from "vitest";
import { ANON_TOKEN, mintAnonToken } from "../../src/auth/anon-token";

/** The secrets vitest.config.ts gives the test env. */
export const SECRET_KEY = "test-secret-key-of-at-least-32-bytes!!";
export const SUPABASE_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long";

const enc = new TextEncoder();
const now = () => Math.floor(Date.now() / 1000);

/** Claims of a normal Supabase user access token. */
export function supabaseClaims(overrides: JWTPayload = {}): JWTPayload {
  return {
    iss: `${inject("supabaseUrl")}/auth/v1`,
    aud: "authenticated",
    sub: crypto.randomUUID(),
    role: "authenticated",
    iat: now(),
    exp: now() + 3600,
    is_anonymous: false,
    ...overrides,
  };
}

/** A Supabase token signed with the legacy HS256 secret. */
export async function supabaseHs256(
  claims: JWTPayload = supabaseClaims(),
  secret = SUPABASE_JWT_SECRET,
): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(enc.encode(secret));
}

/** A Supabase token signed with the JWKS server's ES256 or RS256 key. */
export async function supabaseAsymmetric(
  alg: "ES256" | "RS256",
  claims: JWTPayload = supabaseClaims(),
  kid?: string,
): Promise<string> {
  const jwk = inject("jwksPrivateKeys")[alg === "ES256" ? "es256" : "rs256"];
  const key = await importJWK(jwk, alg);
  return new SignJWT(claims)
    .setProtectedHeader({ alg, typ: "JWT", kid: kid ?? (jwk.kid as string) })
    .sign(key);
}

/** An anonymous session token as the worker mints it. */
export async function anonToken(ttlSeconds = 3600, secret = SECRET_KEY): Promise<string> {
  return (await mintAnonToken(enc.encode(secret), ttlSeconds)).token;
}

/** An anonymous-shaped token with chosen claims, signed with `secret`. */
export async function anonShaped(
  claims: JWTPayload,
  secret = SECRET_KEY,
  typ: string = ANON_TOKEN.typ,
): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ }).sign(enc.encode(secret));
}

/** base64url of a JSON value, for hand-made tokens. */
export function b64url(value: unknown): string {
  const bytes = enc.encode(typeof value === "string" ? value : JSON.stringify(value));
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** `Authorization` header for a token. */
export const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
