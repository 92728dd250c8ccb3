/** @module Supabase access tokens: HS256 with the legacy secret, ES256/RS256 through the project's JWKS. */
import {
  createLocalJWKSet,
  errors,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
  jwtVerify,
} from "jose";
import type { Config } from "../config";
import { hmacKey } from "./hmac-key";
import { type Principal, principal } from "./principal";

/** Asymmetric algorithms Supabase signs with when a project uses signing keys. */
const JWKS_ALGS = ["ES256", "RS256"] as const;
/** A fetch of the key set (other than the very first) starts at most this often. */
export const JWKS_COOLDOWN_MS = 30_000;
/** Keys older than this are fetched again (at most once per cooldown; stale keys serve meanwhile). */
export const JWKS_MAX_AGE_MS = 10 * 60_000;
/** While no key was ever fetched, a failed fetch is not retried for this long. */
export const JWKS_FAILURE_BACKOFF_MS = 5_000;
/** A key-set fetch slower than this fails. */
const JWKS_TIMEOUT_MS = 3_000;

/** The keys of one JWKS address, shared by every request of the isolate. */
interface CachedKeySet {
  /** The keys of the last successful fetch, if any. */
  keys: JWTVerifyGetKey | undefined;
  /** When `keys` were fetched, unix ms. */
  fetchedAt: number;
  /** When the last fetch started, successful or not, unix ms: gates the next one. */
  startedAt: number;
  /** When a fetch last failed, unix ms. */
  failedAt: number;
  /** The fetch in flight, shared by every request that needs it meanwhile. */
  inflight: Promise<JWTVerifyGetKey> | undefined;
}

const keySets = new Map<string, CachedKeySet>();

/** What verification takes from outside, as jose's `customFetch` and `currentDate` do. */
export interface VerifierDeps {
  /** Unix ms now; `Date.now()` by default. */
  now?: () => number;
  /** Fetches the key set; the global `fetch` by default. */
  fetch?: typeof fetch;
}

const systemNow = () => Date.now();
// A plain call of the global: workerd refuses `fetch` called as a method of another object.
const globalFetch: typeof fetch = (input, init) => fetch(input, init);

/** Fetches the key set at `url` once; throws on a non-200 answer, a timeout or a malformed set. */
async function fetchKeySet(url: URL, fetchImpl: typeof fetch): Promise<JWTVerifyGetKey> {
  const res = await fetchImpl(url, {
    headers: { accept: "application/json, application/jwk-set+json" },
    redirect: "manual",
    signal: AbortSignal.timeout(JWKS_TIMEOUT_MS),
  });
  if (res.status !== 200) throw new Error(`the key set answered ${res.status}`);
  // createLocalJWKSet checks the shape and throws JWKSInvalid on anything else.
  return createLocalJWKSet((await res.json()) as JSONWebKeySet);
}

/**
 * The key resolver for one JWKS address. jose's createRemoteJWKSet cannot share one fetch
 * between requests in workerd, so a burst of unknown `kid`s past its cooldown fetched once per
 * request; here the cooldown starts when a fetch starts, so a refetch on an unknown `kid` (or
 * of stale keys) happens at most once per JWKS_COOLDOWN_MS, however many requests arrive.
 * Only while no key was ever fetched may every request try. The keys are the isolate's, per
 * address; `now` and `fetchImpl` are those of the verifier that builds the resolver.
 */
export function remoteKeySet(
  url: URL,
  { now = systemNow, fetch: fetchImpl = globalFetch }: VerifierDeps = {},
): JWTVerifyGetKey {
  let cache = keySets.get(url.href);
  if (!cache) {
    cache = { keys: undefined, fetchedAt: 0, startedAt: 0, failedAt: 0, inflight: undefined };
    keySets.set(url.href, cache);
  }
  const state = cache;
  const coolingDown = () => now() - state.startedAt < JWKS_COOLDOWN_MS;
  // One fetch at a time: a burst on a cold isolate (20 forged tokens at once) waits on the
  // same fetch instead of starting one each.
  const refresh = (): Promise<JWTVerifyGetKey> => {
    state.inflight ??= (async () => {
      state.startedAt = now();
      try {
        const keys = await fetchKeySet(url, fetchImpl);
        state.keys = keys;
        state.fetchedAt = now();
        return keys;
      } catch (e) {
        state.failedAt = now();
        throw e;
      } finally {
        state.inflight = undefined;
      }
    })();
    return state.inflight;
  };
  return async (header, input) => {
    const stale = state.keys;
    let keys: JWTVerifyGetKey;
    if (!stale) {
      // Never fetched yet: every request may try, but not right after a failure, so a flood of
      // forged ES256/RS256 tokens while the key set is down cannot turn into a flood of fetches.
      if (now() - state.failedAt < JWKS_FAILURE_BACKOFF_MS) throw new Error("key set unavailable");
      keys = await refresh();
    } else if (now() - state.fetchedAt >= JWKS_MAX_AGE_MS && !coolingDown()) {
      keys = await refresh().catch(() => stale);
    } else keys = stale;
    try {
      return await keys(header, input);
    } catch (e) {
      if (!(e instanceof errors.JWKSNoMatchingKey) || coolingDown()) throw e;
      return (await refresh())(header, input);
    }
  };
}

/** Seconds of clock skew allowed between Supabase and this Worker, for every time claim. */
const CLOCK_TOLERANCE_S = 5;

/**
 * The verifier of Supabase user access tokens under `config`, built once per config: it
 * throws on any failure. The algorithm decides the key: HS256 only ever meets the shared secret
 * and ES256/RS256 only the JWKS, so an HS256 token "signed" with a published public key can
 * never verify. `deps.now` is the time every check is made at (`exp`, `nbf`, `iat`, the key
 * set's cache), `deps.fetch` fetches the key set.
 */
export function supabaseVerifier(
  config: Config,
  deps: VerifierDeps = {},
): (token: string) => Promise<Principal> {
  const { jwtSecret, jwksUrl, issuer } = config.supabase;
  const now = deps.now ?? systemNow;
  const algorithms: string[] = [];
  if (jwtSecret) algorithms.push("HS256");
  if (jwksUrl) algorithms.push(...JWKS_ALGS);
  const remote = jwksUrl ? remoteKeySet(jwksUrl, deps) : undefined;
  const getKey: JWTVerifyGetKey = (header, input) => {
    if (header.alg === "HS256" && jwtSecret) return hmacKey(jwtSecret);
    if (remote && (JWKS_ALGS as readonly string[]).includes(header.alg ?? "")) {
      return remote(header, input);
    }
    throw new Error("algorithm not allowed");
  };

  return async function verifySupabaseToken(token) {
    if (algorithms.length === 0) throw new Error("supabase verification not configured");
    const at = now();
    const { payload } = await jwtVerify(token, getKey, {
      algorithms,
      audience: "authenticated",
      ...(issuer ? { issuer } : {}),
      requiredClaims: ["sub", "exp", "iat"],
      clockTolerance: CLOCK_TOLERANCE_S,
      currentDate: new Date(at),
    });
    const { sub, exp, iat, role } = payload;
    if (role !== "authenticated") throw new Error("not a user token");
    // jose checks `iat` only with maxTokenAge; a token "issued" in the future is forged or skewed.
    if (typeof iat !== "number" || iat > at / 1000 + CLOCK_TOLERANCE_S)
      throw new Error("iat in the future");
    if (typeof sub !== "string" || sub.length === 0 || sub.length > 128) throw new Error("bad sub");
    if (typeof exp !== "number") throw new Error("bad exp");
    // jose checked `exp` at `at`, before the key set was fetched (up to its timeout ago): a
    // token that expired meanwhile is refused as if it had been checked now.
    if (exp <= now() / 1000 - CLOCK_TOLERANCE_S)
      throw new Error("expired while its key set was fetched");
    return principal("supabase", sub, payload.is_anonymous === true, exp);
  };
}
