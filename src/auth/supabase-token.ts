/** @module Supabase access tokens: HS256 with the legacy secret, ES256/RS256 through the project's JWKS. */
import { createRemoteJWKSet, type JWTVerifyGetKey, jwtVerify } from "jose";
import type { Config } from "../config";
import { type Principal, principal } from "./principal";

/** Asymmetric algorithms Supabase signs with when a project uses signing keys. */
const JWKS_ALGS = ["ES256", "RS256"] as const;
/** A refetch of the key set on an unknown `kid` happens at most this often. */
export const JWKS_COOLDOWN_MS = 30_000;

/** One remote key set per URL for the isolate's life: jose caches keys and rate-limits refetches. */
const keySets = new Map<string, JWTVerifyGetKey>();

function keySet(url: URL): JWTVerifyGetKey {
  let set = keySets.get(url.href);
  if (!set) {
    set = createRemoteJWKSet(url, {
      cooldownDuration: JWKS_COOLDOWN_MS,
      cacheMaxAge: 10 * 60_000,
      timeoutDuration: 3_000,
    });
    keySets.set(url.href, set);
  }
  return set;
}

/** True when Supabase tokens can be verified at all with this config. */
export function supabaseConfigured(config: Config): boolean {
  return Boolean(config.supabase.jwtSecret || config.supabase.jwksUrl);
}

/**
 * Verifies a Supabase user access token. The algorithm decides the key: HS256 only ever
 * meets the shared secret and ES256/RS256 only the JWKS, so an HS256 token "signed" with a
 * published public key can never verify. Throws on any failure.
 */
export async function verifySupabaseToken(token: string, config: Config): Promise<Principal> {
  const { jwtSecret, jwksUrl, issuer } = config.supabase;
  const algorithms: string[] = [];
  if (jwtSecret) algorithms.push("HS256");
  if (jwksUrl) algorithms.push(...JWKS_ALGS);
  if (algorithms.length === 0) throw new Error("supabase verification not configured");

  const getKey = (
    header: Parameters<JWTVerifyGetKey>[0],
    input: Parameters<JWTVerifyGetKey>[1],
  ) => {
    if (header.alg === "HS256" && jwtSecret) return jwtSecret;
    if (jwksUrl && (JWKS_ALGS as readonly string[]).includes(header.alg ?? "")) {
      return keySet(jwksUrl)(header, input);
    }
    throw new Error("algorithm not allowed");
  };

  const { payload } = await jwtVerify(token, getKey, {
    algorithms,
    audience: "authenticated",
    ...(issuer ? { issuer } : {}),
    requiredClaims: ["sub", "exp", "iat"],
    clockTolerance: 5,
  });
  const { sub, exp, role } = payload;
  if (role !== "authenticated") throw new Error("not a user token");
  if (typeof sub !== "string" || sub.length === 0 || sub.length > 128) throw new Error("bad sub");
  if (typeof exp !== "number") throw new Error("bad exp");
  return principal("supabase", sub, payload.is_anonymous === true, exp);
}
