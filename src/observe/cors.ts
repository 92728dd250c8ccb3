/** @module CORS for /api/v1/* and /v1/*: the `CORS_ORIGINS` allow-list, preflight included; none: same origin only. */
import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { createMiddleware } from "hono/factory";
import type { Config } from "../config";
import type { AppEnv } from "../env";

/** What browser clients send: ours, and the OpenAI SDKs' X-Stainless-* telemetry headers. */
export const CORS_ALLOW_HEADERS = [
  "Authorization",
  "Content-Type",
  "Accept",
  "X-Request-Id",
  "Last-Event-ID",
  "X-Stainless-Arch",
  "X-Stainless-Lang",
  "X-Stainless-OS",
  "X-Stainless-Package-Version",
  "X-Stainless-Retry-Count",
  "X-Stainless-Runtime",
  "X-Stainless-Runtime-Version",
  "X-Stainless-Timeout",
  "X-Stainless-Helper-Method",
  "X-Stainless-Poll-Helper",
  "X-Stainless-Custom-Poll-Interval",
];

/** What a browser client may read: the ids, the retry hints and the rate-limit state. */
const EXPOSE_HEADERS = [
  "X-Request-Id",
  "X-Stream-Id",
  "Retry-After",
  "retry-after-ms",
  "x-should-retry",
  "RateLimit-Limit",
  "RateLimit-Remaining",
  "RateLimit-Reset",
];

const handlers = new WeakMap<Config, MiddlewareHandler>();

/** hono/cors for the configured origins, built once per config. */
function corsFor(config: Config): MiddlewareHandler {
  let handler = handlers.get(config);
  if (!handler) {
    const allowed = new Set(config.corsOrigins);
    handler = cors({
      origin: (origin) => (allowed.has(origin) ? origin : null),
      allowMethods: ["GET", "HEAD", "POST", "DELETE", "OPTIONS"],
      allowHeaders: CORS_ALLOW_HEADERS,
      exposeHeaders: EXPOSE_HEADERS,
      maxAge: 600,
    });
    handlers.set(config, handler);
  }
  return handler;
}

/**
 * Adds CORS headers for an allow-listed `Origin` and answers its preflights. Without
 * `CORS_ORIGINS` it does nothing: browsers then allow the same origin only.
 */
export const allowListedOrigins = createMiddleware<AppEnv>(
  async function allowListedOrigins(c, next) {
    const config = c.get("config") as Config | undefined;
    if (!config || config.corsOrigins.length === 0) return next();
    return corsFor(config)(c, next);
  },
);
