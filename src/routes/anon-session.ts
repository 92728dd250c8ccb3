/** @module POST /api/v1/anon_session: mints an anonymous session token, limited per client IP. */
import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import * as z from "zod";
import { mintAnonToken } from "../auth/anon-token";
import { type ChallengeFailure, TURNSTILE_TOKEN_MAX, verifyTurnstile } from "../auth/turnstile";
import type { Config } from "../config";
import type { AppEnv } from "../env";
import { AppError } from "../errors";
import { invalidInput, limitBody } from "../input/validate";
import { clientIp, passMintLimit } from "../limits/address";
import { annotate } from "../observe/access-log";

const MIN_TTL_SECONDS = 60;

/** What the client is told per failure; the reason itself goes to the log line only. */
const CHALLENGE_DETAIL: Record<ChallengeFailure, string> = {
  missing: "solve the challenge and send its token as turnstile_token",
  rejected: "the challenge was not passed; solve it again",
  hostname: "the challenge was not passed; solve it again",
  action: "the challenge was not passed; solve it again",
  unavailable: "the challenge could not be checked right now; try again shortly",
};

/** Where a requested `ttl_seconds` came from: JSON must send a number, a query only has text. */
type RequestedTtl =
  | { from: "none" }
  | { from: "query"; value: string }
  | { from: "json"; value: unknown };

/** What a mint asks for: a lifetime, and the Turnstile token when the server wants one. */
interface MintRequest {
  ttl: RequestedTtl;
  turnstileToken: string | undefined;
}

const mintBody = z
  .strictObject({
    ttl_seconds: z.unknown(),
    turnstile_token: z.string().min(1).max(TURNSTILE_TOKEN_MAX),
  })
  .partial();

/**
 * 403 for a cross-site request: a page elsewhere must not mint with its visitors' addresses
 * (and so lock everyone behind their NAT out of new sessions). Browsers send Sec-Fetch-Site;
 * a non-browser client sends none and is not affected.
 */
const sameSiteOnly = createMiddleware<AppEnv>(async function sameSiteOnly(c, next) {
  if (c.req.header("Sec-Fetch-Site")?.trim().toLowerCase() === "cross-site") {
    throw new AppError("forbidden", "sessions cannot be minted from another site");
  }
  await next();
});

/**
 * Reads the JSON body (already size-limited; empty means `{}`), else `ttl_seconds` from the
 * query. `Content-Type: application/json` is required even without a body: a cross-site page
 * can only send it after a CORS preflight, which this API never grants.
 */
async function readMintRequest(req: Request, url: URL): Promise<MintRequest> {
  const type = req.headers.get("Content-Type")?.split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json") {
    throw new AppError(
      "unsupported_media_type",
      "send Content-Type: application/json (the body may be empty)",
    );
  }
  const values = url.searchParams.getAll("ttl_seconds");
  // A repeated parameter is ambiguous: it is refused (as "") rather than one of them picked.
  const fromQuery: RequestedTtl =
    values.length === 0
      ? { from: "none" }
      : { from: "query", value: values.length === 1 ? (values[0] ?? "") : "" };
  const text = req.body ? await req.text() : "";
  if (text.trim() === "") return { ttl: fromQuery, turnstileToken: undefined };
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new AppError("invalid_input", "the body is not valid JSON", { fields: ["body"] });
  }
  const parsed = mintBody.safeParse(body);
  if (!parsed.success) throw invalidInput(parsed.error);
  return {
    ttl:
      "ttl_seconds" in parsed.data ? { from: "json", value: parsed.data.ttl_seconds } : fromQuery,
    turnstileToken: parsed.data.turnstile_token,
  };
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

/** Configs whose missing or short SECRET_KEY was logged: once per isolate, not on every mint. */
const loggedKeyProblem = new WeakSet<Config>();

/** The anonymous-session route. */
export const anonSessionRoutes = new Hono<AppEnv>().post(
  "/",
  sameSiteOnly,
  limitBody,
  clientIp,
  async (c) => {
    const { config } = c.var;
    if (!config.anonKey.ok) {
      if (!loggedKeyProblem.has(config)) {
        loggedKeyProblem.add(config);
        c.var.log.error("misconfigured", { detail: config.anonKey.reason });
      }
      throw new AppError("misconfigured", "anonymous sessions are not configured on this server");
    }
    const url = new URL(c.req.url);
    const request = await readMintRequest(c.req.raw, url);
    const ttl = parseTtl(request.ttl, config.anonSessionTtlSeconds);
    if (!ttl.success) {
      throw new AppError(
        "invalid_input",
        `ttl_seconds: ${ttl.error.issues[0]?.message ?? "invalid"}`,
        {
          fields: ["ttl_seconds"],
        },
      );
    }

    // Before the store: a failed challenge spends no mint of the address's hourly allowance.
    if (config.turnstile) {
      const ip = c.req.header("CF-Connecting-IP");
      const result = await verifyTurnstile(
        config.turnstile,
        request.turnstileToken,
        url.hostname,
        ip,
      );
      if (!result.ok) {
        annotate(c.req.raw, { challenge: result.reason });
        throw new AppError("challenge_failed", CHALLENGE_DETAIL[result.reason]);
      }
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
  },
);
