/** @module The authentication middleware: Bearer token in, verified Principal out, or a 401. */

import { createMiddleware } from "hono/factory";
import { decodeProtectedHeader } from "jose";
import type { Config } from "../config";
import type { AppEnv } from "../env";
import { AppError } from "../errors";
import { ANON_TOKEN, verifyAnonToken } from "./anon-token";
import type { Principal } from "./principal";
import { supabaseVerifier, type VerifierDeps } from "./supabase-token";
import { VerifiedTokens } from "./verified-tokens";

/** Headers longer than this are refused before any parsing or crypto. */
export const MAX_AUTHORIZATION_BYTES = 8 * 1024;
const BEARER = /^Bearer +(\S+)$/i;
const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

function missing(): AppError {
  return new AppError("unauthorized", "a Bearer token is required", {
    headers: { "WWW-Authenticate": 'Bearer realm="magic-box"' },
  });
}

function invalid(detail: string, cause?: unknown): AppError {
  return new AppError("unauthorized", detail, {
    headers: { "WWW-Authenticate": 'Bearer error="invalid_token"' },
    cause,
  });
}

function isExpired(e: unknown): boolean {
  return typeof e === "object" && e !== null && "code" in e && e.code === "ERR_JWT_EXPIRED";
}

/** What one config verifies with: its memo of verified tokens and its Supabase verifier. */
interface Verifiers {
  memo: VerifiedTokens;
  supabase: (token: string) => Promise<Principal>;
}

/** Per config (a new config, e.g. rotated secrets, starts empty), shared by every route. */
const onSystemClock = new WeakMap<Config, Verifiers>();

/**
 * Requires a Bearer token and sets `principal`. The token's own header only picks which
 * verifier runs (one verification per request); the verifier checks everything again.
 * `deps` (the clock, the key set's fetch) reach every check and the memo; without them, every
 * route shares one memo per config.
 */
export function requireAuth(deps?: VerifierDeps) {
  const now = deps?.now ?? (() => Date.now());
  const perConfig = deps ? new WeakMap<Config, Verifiers>() : onSystemClock;
  const verifiersOf = (config: Config): Verifiers => {
    let found = perConfig.get(config);
    if (!found) {
      found = { memo: new VerifiedTokens(), supabase: supabaseVerifier(config, deps) };
      perConfig.set(config, found);
    }
    return found;
  };
  return createMiddleware<AppEnv>(async function authenticate(c, next) {
    const header = c.req.header("Authorization");
    if (header === undefined || header.trim() === "") throw missing();
    if (header.length > MAX_AUTHORIZATION_BYTES)
      throw invalid("the Authorization header is too large");
    const token = BEARER.exec(header.trim())?.[1];
    if (!token) throw invalid("the Authorization header must be 'Bearer <token>'");
    // A Bearer header whose token is no JWT: often a provider's API key (sk-...) given to an SDK.
    if (!JWT.test(token)) {
      throw invalid(
        "the Bearer token is not a gateway token: use a session token from POST /api/v1/anon_session or a Supabase access token",
      );
    }

    const config = c.get("config");
    const { memo, supabase } = verifiersOf(config);
    const at = now();
    const known = memo.get(token, at);
    if (known) {
      c.set("principal", known);
      return next();
    }
    try {
      const { typ } = decodeProtectedHeader(token);
      let principal: Principal;
      if (typ === ANON_TOKEN.typ) {
        if (!config.anonKey.ok) throw new Error("anonymous sessions are not configured");
        const { key } = config.anonKey;
        principal = await verifyAnonToken(token, key, config.anonSessionTtlSeconds, at);
      } else {
        principal = await supabase(token);
      }
      c.set("principal", principal);
      memo.set(token, principal, now());
    } catch (e) {
      throw invalid(isExpired(e) ? "the token has expired" : "the token is not valid", e);
    }
    await next();
  });
}
