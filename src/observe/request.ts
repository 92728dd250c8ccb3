/** @module Per-request context: request id, logger and config, and the one access-log line at the end. */
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { HTTPException } from "hono/http-exception";
import { type Config, configFor } from "../config";
import type { AppEnv } from "../env";
import { AppError, renderError } from "../errors";
import { createLogger, describeError, type LogFields, writeLog } from "./log";

const REQUEST_ID = /^[A-Za-z0-9_.:=-]{8,128}$/;
const warnedDevKey = new WeakSet<Config>();

/** Fields a later stage adds to the request's access-log line. */
export type AccessFields = LogFields;
const extras = new WeakMap<Request, AccessFields>();

/** Adds fields (error code, latencies, tokens...) to this request's access-log line. */
export function annotate(req: Request, fields: AccessFields): void {
  extras.set(req, { ...extras.get(req), ...fields });
}

/**
 * First middleware: takes a well-formed incoming X-Request-Id or makes one, parses the
 * config (once per isolate), and writes one access-log line when the response is ready.
 */
export const requestContext = createMiddleware<AppEnv>(async function requestContext(c, next) {
  const incoming = c.req.header("X-Request-Id");
  const requestId = incoming && REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
  const log = createLogger(requestId);
  c.set("requestId", requestId);
  c.set("log", log);
  const started = Date.now();
  try {
    const parsed = configFor(c.env);
    if ("error" in parsed) {
      if (parsed.fresh) writeLog("error", "misconfigured", { detail: parsed.error.message });
      if (c.req.path !== "/healthz") {
        c.res = handleError(new AppError("misconfigured", "the service is misconfigured"), c);
        return;
      }
    } else {
      const { config } = parsed;
      if (config.anonKey.ok && config.anonKey.generated && !warnedDevKey.has(config)) {
        warnedDevKey.add(config);
        log.warn("dev_secret_key", {
          detail: "SECRET_KEY is not set: using a random key for this isolate (development only)",
        });
      }
      c.set("config", config);
    }
    await next();
  } finally {
    c.res.headers.set("X-Request-Id", requestId);
    const principal = c.var.principal;
    log.info("request", {
      method: c.req.method,
      route: c.req.routePath,
      status: c.res.status,
      principal: principal ? (principal.isAnonymous ? "anonymous" : "user") : "none",
      duration_ms: Date.now() - started,
      ...extras.get(c.req.raw),
    });
  }
});

/** Maps anything thrown to an AppError; unknown errors become a bare `internal_error`. */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof HTTPException) {
    if (err.status === 413) return new AppError("payload_too_large", "the body is too large");
    if (err.status === 400)
      return new AppError("invalid_input", "the request is malformed", { fields: ["body"] });
  }
  return new AppError("internal_error", "something went wrong on our side", { cause: err });
}

/**
 * The app's onError: logs what a client must not see (the cause), annotates the access line
 * with the error code, and renders the contract's error body or SSE frame.
 */
export function handleError(err: unknown, c: Context<AppEnv>): Response {
  const appError = toAppError(err);
  if (appError.status >= 500) {
    const cause = appError === err ? appError.cause : err;
    c.var.log?.error("error", {
      error_code: appError.code,
      cause: cause ? describeError(cause) : undefined,
    });
  }
  annotate(c.req.raw, { error_code: appError.code });
  return renderError(appError, c.req.header("Accept"));
}
