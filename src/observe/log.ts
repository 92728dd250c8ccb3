/** @module Structured logs: one JSON object per line, each carrying the request id. */

export type Level = "info" | "warn" | "error";
export type LogFields = Record<string, string | number | boolean | null | undefined>;

/** A logger bound to one request. */
export interface Logger {
  readonly requestId: string;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

/** Writes one line; `wrangler dev` and `wrangler tail` show it as it is. */
export function writeLog(level: Level, event: string, fields: LogFields = {}): void {
  const line = JSON.stringify({ ts: new Date().toISOString(), level, event, ...fields });
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}

/** A logger whose every line names `requestId`. */
export function createLogger(requestId: string): Logger {
  return {
    requestId,
    info: (event, fields) => writeLog("info", event, { ...fields, request_id: requestId }),
    warn: (event, fields) => writeLog("warn", event, { ...fields, request_id: requestId }),
    error: (event, fields) => writeLog("error", event, { ...fields, request_id: requestId }),
  };
}

/** A short, safe description of an unknown thrown value for a log line (never for a client). */
export function describeError(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}`.slice(0, 300);
  return String(e).slice(0, 300);
}
