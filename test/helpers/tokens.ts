/** @module Signs the tokens the tests present: Supabase-shaped (HS256, ES256, RS256) and anonymous. */
import {
  exportSPKI,
  importJWK,
  type JWK,
  type JWTHeaderParameters,
  type JWTPayload,
  SignJWT,
} from "jose";
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

/** Any HS256 token: `claims` as given, the header merged over `{alg: "HS256", typ: "JWT"}`. */
export async function hs256(
  claims: JWTPayload,
  secret: string | Uint8Array,
  header: Partial<JWTHeaderParameters> = {},
): Promise<string> {
  const key = typeof secret === "string" ? enc.encode(secret) : secret;
  return new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT", ...header }).sign(key);
}

/** A hand-made compact token with any header and payload, and `signature` as its third segment. */
export function rawToken(
  header: Record<string, unknown>,
  payload: unknown,
  signature = "",
): string {
  return `${b64url(header)}.${b64url(payload)}.${signature}`;
}

/** Claims of one of our anonymous tokens, as mintAnonToken writes them. */
export function anonClaims(overrides: JWTPayload = {}): JWTPayload {
  return {
    anon: true,
    iss: ANON_TOKEN.issuer,
    aud: ANON_TOKEN.audience,
    sub: `anon_${crypto.randomUUID()}`,
    jti: crypto.randomUUID(),
    iat: now(),
    nbf: now(),
    exp: now() + 3600,
    ...overrides,
  };
}

/** The shape of a Supabase project API key (anon or service_role): HS256, no `sub`, no `aud`. */
export function supabaseApiKeyClaims(role: "anon" | "service_role"): JWTPayload {
  return { iss: "supabase", ref: "x", role, iat: now(), exp: now() + 10 * 365 * 86_400 };
}

/** The public half of a JWKS server key, as it is published. */
export function publicJwk(alg: "ES256" | "RS256"): JWK {
  const {
    d: _d,
    p: _p,
    q: _q,
    dp: _dp,
    dq: _dq,
    qi: _qi,
    ...pub
  } = inject("jwksPrivateKeys")[alg === "ES256" ? "es256" : "rs256"];
  return { ...pub, use: "sig" };
}

/**
 * Every form of a published public key an attacker could feed to HMAC in an algorithm
 * confusion attack: the JWK as JSON (as served, and in other key orders), the whole key set
 * as served, the SPKI PEM (with and without its final newline) and its DER bytes.
 */
export async function publicKeyForms(
  alg: "ES256" | "RS256",
): Promise<{ form: string; secret: Uint8Array }[]> {
  const jwk = publicJwk(alg);
  const served = await (await fetch(inject("jwksUrl"))).text();
  const servedKeys = (JSON.parse(served) as { keys: JWK[] }).keys;
  const servedJwk = servedKeys.find((k) => k.kid === jwk.kid);
  const key = await importJWK(jwk, alg, { extractable: true });
  if (!(key instanceof CryptoKey)) throw new Error("expected a CryptoKey");
  const pem = await exportSPKI(key);
  const der = new Uint8Array((await crypto.subtle.exportKey("spki", key)) as ArrayBuffer);
  const sorted = Object.fromEntries(Object.entries(jwk).sort(([a], [b]) => a.localeCompare(b)));
  return [
    { form: "JWK JSON as served", secret: enc.encode(JSON.stringify(servedJwk)) },
    { form: "JWK JSON", secret: enc.encode(JSON.stringify(jwk)) },
    { form: "JWK JSON, sorted keys", secret: enc.encode(JSON.stringify(sorted)) },
    { form: "JWKS document as served", secret: enc.encode(served) },
    { form: "SPKI PEM", secret: enc.encode(pem) },
    { form: "SPKI PEM with newline", secret: enc.encode(`${pem}\n`) },
    { form: "SPKI DER", secret: der },
  ];
}

/** How often the JWKS server served `path` (every path when omitted). */
export async function jwksFetches(path?: string): Promise<number> {
  const url = new URL("/__test/fetches", inject("supabaseUrl"));
  if (path !== undefined) url.searchParams.set("path", path);
  const res = await fetch(url);
  return ((await res.json()) as { fetches: number }).fetches;
}

/** A JWKS address of its own on the JWKS server: a fresh key-set cache and fetch count. */
export function uniqueJwksUrl(): URL {
  return new URL(`/t-${crypto.randomUUID()}/auth/v1/.well-known/jwks.json`, inject("supabaseUrl"));
}
