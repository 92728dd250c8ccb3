/** @module The operators' guard: a fixed bearer token from configuration (ADMIN_TOKEN, METRICS_TOKEN). */
import { createMiddleware } from "hono/factory";
import type { Config } from "../config";
import type { AppEnv } from "../env";
import { AppError } from "../errors";

const encoder = new TextEncoder();

/** Compares secrets in constant time (length is not secret: it is fixed by configuration). */
function sameSecret(given: string, expected: string): boolean {
  const a = encoder.encode(given);
  const b = encoder.encode(expected);
  return a.byteLength === b.byteLength && crypto.subtle.timingSafeEqual(a, b);
}

/**
 * 404 while the token `realm` names is unset (the endpoint does not exist), 401 for a missing or
 * wrong one; the answer is never cached.
 */
export function requireToken(
  realm: "admin" | "metrics",
  expectedOf: (c: Config) => string | undefined,
) {
  return createMiddleware<AppEnv>(async function requireToken(c, next) {
    const expected = expectedOf(c.var.config);
    if (!expected) throw new AppError("not_found", "no such endpoint");
    const given = /^Bearer +(\S{1,512})$/i.exec(c.req.header("Authorization") ?? "")?.[1];
    if (!given || !sameSecret(given, expected)) {
      throw new AppError("unauthorized", `a valid ${realm} token is required`, {
        headers: {
          "WWW-Authenticate": given ? 'Bearer error="invalid_token"' : `Bearer realm="${realm}"`,
        },
      });
    }
    c.header("Cache-Control", "no-store");
    await next();
  });
}
