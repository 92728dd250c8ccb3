/** @module The one error model: AppError with a stable error_code, rendered as JSON or as one SSE frame. */
import type { ContentfulStatusCode } from "hono/utils/http-status";

/** Every error_code a client can see. Stable: clients branch on these, never on `detail`. */
export type ErrorCode =
  | "unauthorized"
  | "not_found"
  | "method_not_allowed"
  | "payload_too_large"
  | "unsupported_media_type"
  | "invalid_input"
  | "model_not_allowed"
  /** A stream_id the same principal is still streaming. */
  | "stream_exists"
  /** OpenAI surface only: a model id the registry does not know (natively a 422). */
  | "model_not_found"
  | "forbidden"
  | "challenge_failed"
  | "rate_limited"
  | "quota_exceeded"
  | "too_many_sessions"
  | "budget_exceeded"
  | "budget_exhausted"
  | "upstream_error"
  | "limits_unavailable"
  | "model_unavailable"
  | "upstream_busy"
  | "internal_error"
  | "misconfigured";

const STATUS: Record<ErrorCode, ContentfulStatusCode> = {
  unauthorized: 401,
  not_found: 404,
  method_not_allowed: 405,
  payload_too_large: 413,
  unsupported_media_type: 415,
  invalid_input: 422,
  model_not_allowed: 403,
  stream_exists: 409,
  model_not_found: 404,
  forbidden: 403,
  challenge_failed: 403,
  rate_limited: 429,
  quota_exceeded: 429,
  too_many_sessions: 429,
  budget_exceeded: 429,
  budget_exhausted: 503,
  upstream_error: 502,
  limits_unavailable: 503,
  model_unavailable: 503,
  upstream_busy: 503,
  internal_error: 500,
  misconfigured: 500,
};

/** The JSON body of every error, and the data of an SSE `error` frame. */
export interface ErrorBody {
  error_code: ErrorCode;
  detail: string;
  retry_after: number | null;
  fields?: string[];
}

export interface AppErrorOptions {
  /** Whole seconds; also sent as `Retry-After`. */
  retryAfter?: number;
  /** The failing fields of an `invalid_input`. */
  fields?: string[];
  /** Extra response headers (WWW-Authenticate, Allow, RateLimit-*). */
  headers?: Record<string, string>;
  /** Kept for the log line, never sent to the client. */
  cause?: unknown;
}

/**
 * A failure a client is told about. `detail` is written for the client: it must never
 * carry a stack, a secret, a token or an upstream's own words.
 */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: ContentfulStatusCode;
  readonly detail: string;
  readonly retryAfter: number | null;
  readonly fields: string[] | undefined;
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, detail: string, options: AppErrorOptions = {}) {
    super(detail, { cause: options.cause });
    this.name = "AppError";
    this.code = code;
    this.status = STATUS[code];
    this.detail = detail;
    this.retryAfter =
      options.retryAfter === undefined ? null : Math.max(1, Math.ceil(options.retryAfter));
    this.fields = options.fields;
    this.headers = { ...options.headers };
  }

  /** The client-facing body. */
  body(): ErrorBody {
    const body: ErrorBody = {
      error_code: this.code,
      detail: this.detail,
      retry_after: this.retryAfter,
    };
    if (this.fields) body.fields = this.fields;
    return body;
  }
}

/** True when the client asked for an event stream rather than JSON. */
export function wantsEventStream(accept: string | undefined | null): boolean {
  return typeof accept === "string" && /(^|,)\s*text\/event-stream\s*(;|,|$)/i.test(accept);
}

/** Formats one SSE frame; `data` is JSON, so it never contains a raw newline. */
export function sseFrame(event: string, data: unknown, id?: number): string {
  const idLine = id === undefined ? "" : `id: ${id}\n`;
  return `${idLine}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** Renders an AppError as the contract's JSON body or, for SSE clients, as one `error` frame. */
export function renderError(err: AppError, accept: string | undefined | null): Response {
  const headers = new Headers(err.headers);
  headers.set("Cache-Control", "no-store");
  if (err.retryAfter !== null) headers.set("Retry-After", String(err.retryAfter));
  if (wantsEventStream(accept)) {
    headers.set("Content-Type", "text/event-stream; charset=utf-8");
    return new Response(sseFrame("error", err.body(), 1), { status: err.status, headers });
  }
  headers.set("Content-Type", "application/json; charset=utf-8");
  return new Response(JSON.stringify(err.body()), { status: err.status, headers });
}

/** Refusals a quick retry cannot cure: the OpenAI SDKs are told not to retry them. */
const NO_RETRY = new Set<string>([
  "quota_exceeded",
  "too_many_sessions",
  "budget_exceeded",
  "budget_exhausted",
]);

/** OpenAI's error `type` for a status. */
function openAiType(status: number): string {
  if (status === 400 || status === 404 || status === 405 || status === 413) {
    return "invalid_request_error";
  }
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 429) return "rate_limit_error";
  return "server_error";
}

/** OpenAI's error body: our error_code as `code`, the first failing field as `param`. */
export function openAiErrorBody(
  code: string,
  message: string,
  param: string | null,
  status = 500,
): { error: { message: string; type: string; code: string; param: string | null } } {
  return { error: { message, type: openAiType(status), code, param } };
}

/**
 * Renders an AppError for the OpenAI-compatible surface: the same status, except that input
 * errors (415, 422) are 400 as OpenAI answers them; `Retry-After` with `retry-after-ms`, and
 * `x-should-retry: false` where retrying soon cannot help, which the SDKs honour.
 */
export function renderOpenAiError(err: AppError): Response {
  const status = err.status === 415 || err.status === 422 ? 400 : err.status;
  const headers = new Headers(err.headers);
  headers.set("Cache-Control", "no-store");
  headers.set("Content-Type", "application/json; charset=utf-8");
  if (err.retryAfter !== null) {
    headers.set("Retry-After", String(err.retryAfter));
    headers.set("retry-after-ms", String(err.retryAfter * 1000));
  }
  if (NO_RETRY.has(err.code)) headers.set("x-should-retry", "false");
  const body = openAiErrorBody(err.code, err.detail, err.fields?.[0] ?? null, status);
  return new Response(JSON.stringify(body), { status, headers });
}
