/** @module POST /api/v1/anon_session: mints an anonymous session token, limited per client IP. */
import { Hono } from "hono";
import * as z from "zod";
import { mintAnonToken } from "../auth/anon-token";
import type { AppEnv } from "../env";
import { AppError } from "../errors";
import { invalidInput, limitBody } from "../input/validate";
import { clientIp, passMintLimit } from "../limits/middleware";

const MIN_TTL_SECONDS = 60;

/** Where a requested `ttl_seconds` came from: JSON must send a number, a query only has text. */
type RequestedTtl =
  | { from: "none" }
  | { from: "query"; value: string }
  | { from: "json"; value: unknown };

/** Reads `ttl_seconds` from an optional JSON body (already size-limited), else from the query. */
async function requestedTtl(req: Request, url: URL): Promise<RequestedTtl> {
  const values = url.searchParams.getAll("ttl_seconds");
  // A repeated parameter is ambiguous: it is refused (as "") rather than one of them picked.
  const fromQuery: RequestedTtl =
    values.length === 0
      ? { from: "none" }
      : { from: "query", value: values.length === 1 ? (values[0] ?? "") : "" };
  const text = req.body ? await req.text() : "";
  if (text.trim() === "") return fromQuery;
  const type = req.headers.get("Content-Type")?.split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json")
    throw new AppError("unsupported_media_type", "send the body as application/json");
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new AppError("invalid_input", "the body is not valid JSON", { fields: ["body"] });
  }
  const parsed = z.strictObject({ ttl_seconds: z.unknown() }).partial().safeParse(body);
  if (!parsed.success) throw invalidInput(parsed.error);
  return "ttl_seconds" in parsed.data
    ? { from: "json", value: parsed.data.ttl_seconds }
    : fromQuery;
}

/**
 * The lifetime schema for a maximum of `max` seconds: a JSON number, or plain decimal digits
 * in the query (no "0x78", "1e3", " 120" or [120], which a coercing parse would take).
 */
function ttlSchemas(max: number) {
  const seconds = z
    .number({ error: "must be a number" })
    .int("must be a whole number of seconds")
    .min(MIN_TTL_SECONDS, `must be at least ${MIN_TTL_SECONDS}`)
    .max(max, `must be at most ${max}`);
  return {
    json: seconds,
    query: z
      .string()
      .regex(/^\d{1,10}$/, "must be a whole number of seconds")
      .transform(Number)
      .pipe(seconds),
  };
}

/** The lifetime to mint with: the maximum when none was asked for, else the checked request. */
function parseTtl(requested: RequestedTtl, max: number) {
  if (requested.from === "none") return { success: true as const, data: max };
  const schemas = ttlSchemas(max);
  return requested.from === "json"
    ? schemas.json.safeParse(requested.value)
    : schemas.query.safeParse(requested.value);
}

/** The anonymous-session route. */
export const anonSessionRoutes = new Hono<AppEnv>().post("/", limitBody, clientIp, async (c) => {
  const { config } = c.var;
  if (!config.anonKey.ok) {
    c.var.log.error("misconfigured", { detail: config.anonKey.reason });
    throw new AppError("misconfigured", "anonymous sessions are not configured on this server");
  }
  const ttl = parseTtl(
    await requestedTtl(c.req.raw, new URL(c.req.url)),
    config.anonSessionTtlSeconds,
  );
  if (!ttl.success) {
    throw new AppError(
      "invalid_input",
      `ttl_seconds: ${ttl.error.issues[0]?.message ?? "invalid"}`,
      {
        fields: ["ttl_seconds"],
      },
    );
  }

  const headers = await passMintLimit(c);
  const minted = await mintAnonToken(config.anonKey.key, ttl.data);
  for (const [k, v] of Object.entries(headers)) c.header(k, v);
  c.header("Cache-Control", "no-store");
  return c.json({
    token: minted.token,
    expires_at: minted.expiresAt,
    expires_in: ttl.data,
    message: "anonymous session created; send it as 'Authorization: Bearer <token>'",
  });
});
