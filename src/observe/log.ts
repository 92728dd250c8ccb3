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

/**
 * A short description of a thrown value for a log line (never for a client). `@upstash/redis`
 * appends the command it sent ("…, command was: [...]"), which holds keys with user ids and
 * addresses, and whole ledger records: that part is cut off.
 */
export function describeError(e: unknown): string {
  const text = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return text.replace(/,? ?command was:[\s\S]*$/, "").slice(0, 300);
}
