/** @module Input checks in contract order: size (413), media type (415), JSON, then the zod schema (422). */
import { zValidator } from "@hono/zod-validator";
import type { Context, MiddlewareHandler } from "hono";
import { createMiddleware } from "hono/factory";
import type { z } from "zod";
import type { AppEnv } from "../env";
import { AppError } from "../errors";
import { finishLater } from "../observe/access-log";
import { handleError } from "../observe/error-response";

/** Largest request body accepted, checked before parsing (also for chunked bodies). */
export const MAX_BODY_BYTES = 64 * 1024;

/**
 * Names each failing field of a zod error by its path: `message`, `cost_cap_usd`,
 * `messages.3.role`, or an unknown key (`messages.0.name`).
 */
export function failingFields(error: z.core.$ZodError): string[] {
  const fields = new Set<string>();
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) fields.add([...issue.path.map(String), key].join("."));
    } else {
      fields.add(issue.path.map(String).join(".") || "body");
    }
  }
  return [...fields];
}

/** Renders a zod failure as one `invalid_input` AppError with a `fields` list. */
export function invalidInput(error: z.core.$ZodError): AppError {
  const parts = error.issues.map((i) =>
    i.code === "unrecognized_keys"
      ? `unknown field${i.keys.length > 1 ? "s" : ""} ${i.keys.map((k) => [...i.path.map(String), k].join(".")).join(", ")}`
      : `${i.path.map(String).join(".") || "body"}: ${i.message}`,
  );
  return new AppError("invalid_input", parts.join("; "), { fields: failingFields(error) });
}

/** The one hook every zod validator uses: failures throw `invalid_input`. */
export function zodHook(result: { success: boolean; error?: z.core.$ZodError }, _c: Context): void {
  if (!result.success && result.error) throw invalidInput(result.error);
}

/** After a 413, up to this much more of the body is read (and dropped)... */
export const DRAIN_MAX_BYTES = 16 * 1024 * 1024;
/** ...for at most this long, so a body that trickles forever is let go of soon. */
const DRAIN_MAX_MS = 1_000;

const tooLarge = (max: number) =>
  new AppError("payload_too_large", `the body must be at most ${max} bytes`);

/**
 * Reads and drops what is left of a refused body until it ends, the client goes away, or
 * DRAIN_MAX_BYTES or DRAIN_MAX_MS is reached; then cancels the rest. Resolves with the bytes
 * it read. The timer cancels the reader (a pending read then ends as done) rather than racing
 * each read against one long-lived promise, which would keep every chunk read reachable until
 * the timer fired.
 */
async function drain(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<number> {
  const timer = setTimeout(() => void reader.cancel().catch(() => {}), DRAIN_MAX_MS);
  let read = 0;
  try {
    while (read < DRAIN_MAX_BYTES) {
      const chunk = await reader.read();
      if (chunk.done) break;
      read += chunk.value.byteLength;
    }
  } catch {
    // The client went away: nothing left to drain.
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
  return read;
}

/**
 * The 413 for an over-long body, sent the way a careful HTTP server closes such a connection
 * (a lingering close): the answer goes out at once, complete (it has a Content-Length), and the
 * connection stays open while `drain` reads the rest of the body, which ends when the client,
 * having read the 413, stops sending. Closing with the body unread makes the peer's TCP stack
 * reset the connection, and a reset can destroy the 413 in flight: wrangler dev's proxy then
 * answered "503 Your worker restarted mid-request" and a raw client saw ECONNRESET. The byte
 * bound is large enough for a client on loopback, the fastest there is, to read its 413 before
 * the drain stops (at 1 MiB, wrangler dev's proxy often had not yet passed it on).
 */
async function refuse(
  c: Context<AppEnv>,
  reader: ReadableStreamDefaultReader<Uint8Array>,
  max: number,
): Promise<Response> {
  // The open stream of the 413 keeps the request, and so the drain, alive. The access line
  // waits for the drain and says how much it read.
  const drained = drain(reader);
  finishLater(
    c.req.raw,
    drained.then((bytes) => ({ drained_bytes: bytes })),
  );
  const answer = handleError(tooLarge(max), c);
  const bytes = new Uint8Array(await answer.arrayBuffer());
  const { readable, writable } = new FixedLengthStream(bytes.byteLength);
  const writer = writable.getWriter();
  // Not awaited: the 413 is returned now, and its stream ends once the drain has.
  void writer
    .write(bytes)
    .then(() => drained)
    .then(() => writer.close())
    .catch(() => {
      // The client went away before the answer was written: nothing to close.
    });
  return new Response(readable, answer);
}

/**
 * 413 over `maxOf(c)` bytes, before anything is parsed: at once for a declared Content-Length,
 * counted while reading for a chunked body. Either way the rest is drained (within bounds)
 * while the 413 is on its way.
 */
export function limitBodyTo(maxOf: (c: Context<AppEnv>) => number): MiddlewareHandler<AppEnv> {
  return createMiddleware<AppEnv>(async function limitBody(c, next) {
    const max = maxOf(c);
    const body = c.req.raw.body;
    if (!body) return next();
    const declared = c.req.raw.headers.get("Content-Length");
    if (declared !== null && !c.req.raw.headers.has("Transfer-Encoding")) {
      if (Number(declared) <= max) return next();
      return refuse(c, body.getReader(), max);
    }
    return readWhole(c, next, body, max);
  });
}

/** The native API's body limit: MAX_BODY_BYTES. */
export const limitBody = limitBodyTo(() => MAX_BODY_BYTES);

/** Reads a chunked body up to `max` bytes into one buffer (413 past it), then goes on. */
async function readWhole(
  c: Context<AppEnv>,
  next: () => Promise<void>,
  body: ReadableStream<Uint8Array>,
  max: number,
): Promise<Response | undefined> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) return refuse(c, reader, max);
    chunks.push(value);
  }
  const whole = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    whole.set(chunk, offset);
    offset += chunk.byteLength;
  }
  c.req.raw = new Request(c.req.raw, { body: whole });
  await next();
}

/** 415 unless the body is JSON; 422 when it does not parse as a JSON object. */
export const requireJsonObject = createMiddleware<AppEnv>(
  async function requireJsonObject(c, next) {
    const type = c.req.header("Content-Type")?.split(";")[0]?.trim().toLowerCase();
    if (type !== "application/json") {
      throw new AppError("unsupported_media_type", "send the body as application/json");
    }
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      throw new AppError("invalid_input", "the body is not valid JSON", { fields: ["body"] });
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw new AppError("invalid_input", "the body must be a JSON object", { fields: ["body"] });
    }
    await next();
  },
);

/**
 * Validates `target` with `schema` and hands the result to `set`. The schema may depend on
 * the config, so it is built by `schemaFor` and cached per config object.
 */
export function validateWith<S extends z.ZodType>(
  target: "json" | "query",
  schemaFor: (c: Context<AppEnv>) => S,
  set: (c: Context<AppEnv>, value: z.output<S>) => void,
): MiddlewareHandler<AppEnv> {
  const validators = new WeakMap<S, MiddlewareHandler<AppEnv>>();
  return async function validate(c, next) {
    const schema = schemaFor(c);
    let run = validators.get(schema);
    if (!run) {
      run = zValidator(target, schema, (result, hc) => {
        zodHook(result, hc);
        if (result.success) set(hc as Context<AppEnv>, result.data as z.output<S>);
      }) as unknown as MiddlewareHandler<AppEnv>;
      validators.set(schema, run);
    }
    return run(c, next);
  };
}
