/** @module Per-request context: request id, logger and config, and the one access-log line at the end. */
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { HTTPException } from "hono/http-exception";
import type { Principal } from "../auth/principal";
import { type Config, configFor } from "../config";
import type { AppEnv } from "../env";
import { AppError, type ErrorCode, renderError, renderOpenAiError } from "../errors";
import { storeFor } from "../limits/select-store";
import { createLogger, describeError, type LogFields, writeLog } from "./log";
import { addCounters, countersFor } from "./metrics";
import { queueMetrics } from "./metrics-writer";
import { providerCounters } from "./provider-metrics";

const REQUEST_ID = /^[A-Za-z0-9_.:=-]{8,128}$/;
const warnedDevKey = new WeakSet<Config>();

/** Fields a later stage adds to the request's access-log line. */
export type AccessFields = LogFields;
const extras = new WeakMap<Request, AccessFields>();
const deferred = new WeakMap<Request, Promise<AccessFields>>();

/** Adds fields (error code, latencies, tokens...) to this request's access-log line. */
export function annotate(req: Request, fields: AccessFields): void {
  extras.set(req, { ...extras.get(req), ...fields });
}

/**
 * Holds the access line (and the metrics) of a streaming request until `done` settles, so the
 * line describes the whole stream: duration, tokens, cost and finish reason.
 */
export function finishLater(req: Request, done: Promise<AccessFields>): void {
  deferred.set(req, done);
}

const num = (v: unknown) => (typeof v === "number" ? v : undefined);
const str = (v: unknown) => (typeof v === "string" ? v : undefined);

/** Queues one request's counters for the configured store, written after the response. */
function recordMetrics(c: Context<AppEnv>, f: AccessFields, status: number): Promise<void> {
  const counters = countersFor({
    status,
    stream: f.route === "/api/v1/stream" || f.route === "/v1/chat/completions",
    errorCode: str(f.error_code),
    budgetRefused: str(f.budget_refused),
    storeMs: num(f.store_ms),
    upstreamTtfbMs: num(f.upstream_ttfb_ms),
    finishReason: str(f.finish_reason),
    inputTokens: num(f.input_tokens),
    outputTokens: num(f.output_tokens),
    costMicroUsd: num(f.cost_micro_usd),
  });
  addCounters(counters, providerCounters(f));
  return queueMetrics(storeFor(c.var.config, c.env), counters, c.var.config.metricsFlushMs).catch(
    (e: unknown) => c.var.log.warn("metrics_write_failed", { cause: describeError(e) }),
  );
}

/** Runs `work` after the response, when the runtime gives us an execution context. */
function afterResponse(c: Context<AppEnv>, work: Promise<unknown>): void {
  try {
    c.executionCtx.waitUntil(work);
  } catch {
    // No execution context (app.request in a unit test): the work still runs, unawaited.
  }
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
      // Only the API needs the config: the page and /healthz keep serving (the page then says
      // what the API answers), so an operator's typo does not take the whole site down.
      if (/^\/(api|v1)\//.test(c.req.path)) {
        // A registry error names its field (never a secret's value), so the operator sees it.
        const detail = parsed.error.public
          ? `the service is misconfigured: ${parsed.error.message}`
          : "the service is misconfigured";
        c.res = handleError(new AppError("misconfigured", detail), c);
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
    // c.get, not c.var: hono builds a fresh object of every variable on each c.var read.
    const principal = c.get("principal") as Principal | undefined;
    const status = c.res.status;
    const base: AccessFields = {
      method: c.req.method,
      route: c.req.routePath,
      status,
      principal: principal ? (principal.isAnonymous ? "anonymous" : "user") : "none",
    };
    const finish = (more: AccessFields) => {
      const fields = {
        ...base,
        duration_ms: Date.now() - started,
        ...extras.get(c.req.raw),
        ...more,
      };
      log.info("request", fields);
      const counted =
        c.get("config") &&
        (c.req.path.startsWith("/api/") || c.req.path.startsWith("/v1/")) &&
        c.req.path !== "/api/v1/metrics";
      return counted ? recordMetrics(c, fields, status) : Promise.resolve();
    };
    const later = deferred.get(c.req.raw);
    if (later)
      afterResponse(
        c,
        later.then(finish, () => finish({})),
      );
    else afterResponse(c, finish({}));
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
 * 5xx answers that are refusals by design, not faults: a spent shared budget refuses everyone
 * until it frees, and an error line per refused request would bury the faults. Their access
 * line carries the error_code, and `budget_refused_<name>` counts them.
 */
const REFUSALS: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["budget_exhausted"]);

/**
 * The app's onError: logs what a client must not see (the cause), annotates the access line
 * with the error code, and renders the contract's error body or SSE frame.
 */
export function handleError(err: unknown, c: Context<AppEnv>): Response {
  const appError = toAppError(err);
  if (appError.status >= 500 && !REFUSALS.has(appError.code)) {
    const cause = appError === err ? appError.cause : err;
    c.var.log?.error("error", {
      error_code: appError.code,
      cause: cause ? describeError(cause) : undefined,
    });
  }
  annotate(c.req.raw, { error_code: appError.code });
  // The OpenAI-compatible surface answers in OpenAI's error shape, which its SDKs parse.
  if (c.req.path.startsWith("/v1/")) return renderOpenAiError(appError);
  return renderError(appError, c.req.header("Accept"));
}
