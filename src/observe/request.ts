/** @module Per-request context: the request id, the logger and the config (or a misconfigured answer). */
import { createMiddleware } from "hono/factory";
import { type Config, configFor } from "../config";
import type { AppEnv } from "../env";
import { AppError } from "../errors";
import { writeAccessLine } from "./access-log";
import { handleError } from "./error-response";
import { createLogger, writeLog } from "./log";

const REQUEST_ID = /^[A-Za-z0-9_.:=-]{8,128}$/;
const warnedDevKey = new WeakSet<Config>();

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
    writeAccessLine(c, started);
  }
});
