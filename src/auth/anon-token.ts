/** @module Anonymous session tokens: minted and verified by this worker with SECRET_KEY (HS256). */
import { jwtVerify, SignJWT } from "jose";
import { hmacKey } from "./hmac-key";
import { type Principal, principal } from "./principal";

/** Claims that set our tokens apart from Supabase's, even when both secrets are equal. */
export const ANON_TOKEN = {
  issuer: "urn:magic-box:anon",
  audience: "urn:magic-box:stream",
  typ: "anon+jwt",
  alg: "HS256",
} as const;

export interface MintedToken {
  token: string;
  userId: string;
  expiresAt: number;
}

/** Mints a token for a fresh random identity that lives `ttlSeconds`. */
export async function mintAnonToken(
  key: Uint8Array,
  ttlSeconds: number,
  now = Math.floor(Date.now() / 1000),
): Promise<MintedToken> {
  const userId = `anon_${crypto.randomUUID()}`;
  const expiresAt = now + ttlSeconds;
  const token = await new SignJWT({ anon: true })
    .setProtectedHeader({ alg: ANON_TOKEN.alg, typ: ANON_TOKEN.typ })
    .setIssuer(ANON_TOKEN.issuer)
    .setAudience(ANON_TOKEN.audience)
    .setSubject(userId)
    .setJti(crypto.randomUUID())
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(expiresAt)
    .sign(await hmacKey(key));
  return { token, userId, expiresAt };
}

/**
 * Verifies one of our anonymous tokens at `now` (unix ms). `maxTtlSeconds` bounds the lifetime
 * a token may claim, so a token minted under a longer TTL setting dies when the setting shrinks.
 * Throws jose's errors; the caller turns every one of them into a 401.
 */
export async function verifyAnonToken(
  token: string,
  key: Uint8Array,
  maxTtlSeconds: number,
  now = Date.now(),
): Promise<Principal> {
  const { payload } = await jwtVerify(token, await hmacKey(key), {
    algorithms: [ANON_TOKEN.alg],
    issuer: ANON_TOKEN.issuer,
    audience: ANON_TOKEN.audience,
    typ: ANON_TOKEN.typ,
    requiredClaims: ["sub", "exp", "iat"],
    maxTokenAge: maxTtlSeconds,
    clockTolerance: 5,
    currentDate: new Date(now),
  });
  const { sub, exp, iat } = payload;
  if (typeof sub !== "string" || !/^anon_[0-9a-f-]{36}$/.test(sub)) throw new Error("bad sub");
  if (typeof exp !== "number" || typeof iat !== "number" || exp - iat > maxTtlSeconds) {
    throw new Error("lifetime out of bounds");
  }
  return principal("anonymous", sub, true, exp);
}
