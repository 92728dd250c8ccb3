/** @module Input checks in contract order: size (413), media type (415), JSON, then the zod schema (422). */
import { zValidator } from "@hono/zod-validator";
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { createMiddleware } from "hono/factory";
import type { z } from "zod";
import type { AppEnv } from "../env";
import { AppError } from "../errors";

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

/** 413 over MAX_BODY_BYTES, counted while reading when there is no Content-Length. */
export const limitBody: MiddlewareHandler<AppEnv> = bodyLimit({
  maxSize: MAX_BODY_BYTES,
  onError: () => {
    throw new AppError("payload_too_large", `the body must be at most ${MAX_BODY_BYTES} bytes`);
  },
});

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
