/** @module The authentication middleware: Bearer token in, verified Principal out, or a 401. */

import { createMiddleware } from "hono/factory";
import { decodeProtectedHeader } from "jose";
import type { AppEnv } from "../env";
import { AppError } from "../errors";
import { ANON_TOKEN, verifyAnonToken } from "./anon-token";
import type { Principal } from "./principal";
import { verifySupabaseToken } from "./supabase-token";
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

/** Tokens verified under each config (a new config, e.g. rotated secrets, starts empty). */
const verified = new WeakMap<object, VerifiedTokens>();

/**
 * Requires a Bearer token and sets `principal`. The token's own header only picks which
 * verifier runs (one verification per request); the verifier checks everything again.
 */
export function requireAuth() {
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
    let memo = verified.get(config);
    if (!memo) {
      memo = new VerifiedTokens();
      verified.set(config, memo);
    }
    const known = memo.get(token, Date.now());
    if (known) {
      c.set("principal", known);
      return next();
    }
    try {
      const { typ } = decodeProtectedHeader(token);
      let principal: Principal;
      if (typ === ANON_TOKEN.typ) {
        if (!config.anonKey.ok) throw new Error("anonymous sessions are not configured");
        principal = await verifyAnonToken(token, config.anonKey.key, config.anonSessionTtlSeconds);
      } else {
        principal = await verifySupabaseToken(token, config);
      }
      c.set("principal", principal);
      memo.set(token, principal, Date.now());
    } catch (e) {
      throw invalid(isExpired(e) ? "the token has expired" : "the token is not valid", e);
    }
    await next();
  });
}
