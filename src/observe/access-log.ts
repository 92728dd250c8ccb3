/**
 * @module The access log: one line per request when its response (or, for a stream, its end) is
 * ready, the fields later stages add to it, and the request's counters for the metrics.
 */
import type { Context } from "hono";
import type { Principal } from "../auth/principal";
import type { AppEnv } from "../env";
import { storeFor } from "../limits/select-store";
import { describeError, type LogFields } from "./log";
import { addCounters, countersFor } from "./metrics";
import { queueMetrics } from "./metrics-writer";
import { providerCounters } from "./provider-metrics";

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
 * Writes the request's access line (and queues its counters) after the response: at once, or,
 * for a stream, when `finishLater`'s promise settles. `started` is when the request came in.
 */
export function writeAccessLine(c: Context<AppEnv>, started: number): void {
  // c.get, not c.var: hono builds a fresh object of every variable on each c.var read.
  const log = c.get("log");
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
