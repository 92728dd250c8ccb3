/** @module Errors as answers: anything thrown becomes the contract's error body, SSE frame or OpenAI error. */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { AppEnv } from "../env";
import { AppError, type ErrorCode, renderError, renderOpenAiError } from "../errors";
import { annotate } from "./access-log";
import { describeError } from "./log";

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
