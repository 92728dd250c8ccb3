/** @module Parses and checks the Worker's vars and secrets once per isolate into a typed Config. */
import * as z from "zod";
import type { Bindings } from "./env";
import type { BudgetSpecs } from "./limits/budget";
import { parseRegistry, type Registry, RegistryError } from "./stream/registry";

/** A sliding window: at most `limit` hits per `windowMs`. */
export interface WindowSpec {
  limit: number;
  windowMs: number;
}

/** The key that signs anonymous session tokens, or why there is none. */
export type AnonKey =
  | { ok: true; key: Uint8Array; generated: boolean }
  | { ok: false; reason: string };

/** Everything the app reads from its environment, checked and typed. */
export interface Config {
  environment: "development" | "production";
  anonKey: AnonKey;
  supabase: {
    /** Expected `iss`, when the project URL is known. */
    issuer: string | undefined;
    jwksUrl: URL | undefined;
    jwtSecret: Uint8Array | undefined;
  };
  upstash: { url: string; token: string } | undefined;
  openai: { apiKey: string | undefined; baseUrl: string };
  rateLimitUser: WindowSpec;
  rateLimitIp: WindowSpec;
  /** Reads of /api/v1/usage per user. */
  rateLimitUsage: WindowSpec;
  anonQuotaHourly: number;
  anonQuotaTotal: number;
  anonSessionTtlSeconds: number;
  anonSessionsPerIpHourly: number;
  heartbeatIntervalMs: number;
  streamMaxDurationMs: number;
  upstreamIdleTimeoutMs: number;
  /** Silence allowed before the first upstream event (non-reasoning models; reasoning: the max duration). */
  upstreamFirstTokenTimeoutMs: number;
  limitsTimeoutMs: number;
  costCapMaxUsd: number;
  /** Conversations (issue 13) and anonymous callers' models and caps (issue 11). */
  conversation: { maxMessages: number; maxPromptChars: number; systemPrompt: string | undefined };
  /**
   * The OpenAI surface's own bounds: images per request (`MAX_IMAGES`) and its body limit
   * (`MAX_BODY_BYTES`, 64 KiB to 20 MiB; the native API keeps 64 KiB).
   */
  openAi: { maxImages: number; maxBodyBytes: number };
  anon: { models: ReadonlySet<string>; costCapMaxUsd: number };
  /** The models, their providers, prices and routes (`PROVIDERS`, `MODELS`, `DEFAULT_MODEL`). */
  registry: Registry;
  /** A route's target that has not answered (status and headers) within this fails over. */
  upstreamConnectTimeoutMs: number;
  /** Origins allowed to call /api/v1/* and /v1/* from a browser (issue 14); empty: same origin only. */
  corsOrigins: readonly string[];
  metricsToken: string | undefined;
  /** Cloudflare Turnstile on minting, when both keys are set. */
  turnstile: { secretKey: string; siteKey: string; verifyUrl: string } | undefined;
  /** Bearer of the operator API (/api/v1/admin/*); without it those paths answer 404. */
  adminToken: string | undefined;
  /** Metric counters are batched per isolate and written this often (0: every request). */
  metricsFlushMs: number;
  /** Namespace of every key in the store, so deployments can share one database. */
  storePrefix: string;
  /** Spend budgets in µUSD (0: off). */
  budgets: BudgetSpecs;
  /** Shards of each shared budget in the Durable Object store (Upstash decides them whole). */
  budgetShards: number;
  /** Resumable streams: kept this long after their end (0: off, the direct path of before). */
  streamResumeTtlS: number;
  /** A stream with no reader goes on this long for a reconnect, then is cancelled. */
  streamOrphanGraceMs: number;
}

/** Raised when a var is malformed; the app answers `misconfigured` until it is fixed. */
export class ConfigError extends Error {
  override name = "ConfigError";
  /** The message names a field and holds no secret, so the API's `detail` may carry it. */
  readonly public: boolean;
  constructor(message: string, options: { public?: boolean } = {}) {
    super(message);
    this.public = options.public ?? false;
  }
}

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** Cloudflare's siteverify, the default of TURNSTILE_VERIFY_URL. */
const TURNSTILE_SITEVERIFY = "https://challenges.cloudflare.com/turnstile/v0/siteverify";
/** Minimum length of the anonymous-token HMAC key, in bytes. */
export const MIN_SECRET_BYTES = 32;

/** Parses `"30/30s"` (limit / window) into a WindowSpec. */
export function parseWindow(value: string): WindowSpec {
  const m = /^\s*(\d{1,9})\s*\/\s*(\d{1,9})?\s*(ms|s|m|h|d)\s*$/.exec(value);
  if (!m) throw new ConfigError(`not a rate limit like "30/30s": ${JSON.stringify(value)}`);
  const limit = Number(m[1]);
  const windowMs = Number(m[2] ?? "1") * UNIT_MS[m[3] as keyof typeof UNIT_MS];
  if (limit < 1 || windowMs < 1000) throw new ConfigError(`rate limit out of range: ${value}`);
  return { limit, windowMs };
}

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
/** A budget in USD (`"1.00"`) as whole µUSD, parsed from its digits so nothing rounds; `0` turns it off. */
const budgetUsd = (fallback: string) =>
  z
    .string()
    .trim()
    .regex(/^\d{1,7}(\.\d{1,6})?$/, "must be a USD amount like 1.00, at most six decimals")
    .default(fallback)
    .transform((v) => {
      const [whole = "0", fraction = ""] = v.split(".");
      return Number(whole) * 1_000_000 + Number(fraction.padEnd(6, "0"));
    });
const optionalText = z
  .string()
  .optional()
  .transform((v) => (v?.trim() ? v.trim() : undefined));
const window = z.string().transform((v, ctx) => {
  try {
    return parseWindow(v);
  } catch (e) {
    ctx.addIssue({ code: "custom", message: (e as Error).message });
    return z.NEVER;
  }
});

const schema = z.object({
  ENVIRONMENT: z.enum(["development", "production"]).default("development"),
  SECRET_KEY: optionalText,
  SUPABASE_URL: optionalText.pipe(z.url({ protocol: /^https?$/ }).optional()),
  SUPABASE_PROJECT_ID: optionalText.pipe(
    z
      .string()
      .regex(/^[a-z0-9]{1,40}$/)
      .optional(),
  ),
  SUPABASE_JWKS_URL: optionalText.pipe(z.url({ protocol: /^https?$/ }).optional()),
  SUPABASE_JWT_SECRET: optionalText,
  UPSTASH_REDIS_REST_URL: optionalText.pipe(z.url({ protocol: /^https?$/ }).optional()),
  UPSTASH_REDIS_REST_TOKEN: optionalText,
  OPENAI_API_KEY: optionalText,
  OPENAI_BASE_URL: z.url({ protocol: /^https?$/ }).default("https://api.openai.com/v1"),
  RATE_LIMIT_USER: window.default(parseWindow("30/30s")),
  RATE_LIMIT_IP: window.default(parseWindow("60/30s")),
  RATE_LIMIT_USAGE: window.default(parseWindow("60/60s")),
  ANON_QUOTA_HOURLY: int(1, 1_000_000).default(20),
  ANON_QUOTA_TOTAL: int(1, 100_000_000).default(100),
  ANON_SESSION_TTL_SECONDS: int(60, 31_536_000).default(604_800),
  ANON_SESSIONS_PER_IP_HOURLY: int(1, 1_000_000).default(10),
  HEARTBEAT_INTERVAL_MS: int(100, 600_000).default(10_000),
  STREAM_MAX_DURATION_MS: int(1_000, 3_600_000).default(120_000),
  UPSTREAM_IDLE_TIMEOUT_MS: int(100, 600_000).default(30_000),
  UPSTREAM_FIRST_TOKEN_TIMEOUT_MS: int(100, 3_600_000).default(60_000),
  UPSTREAM_CONNECT_TIMEOUT_MS: int(100, 600_000).default(10_000),
  LIMITS_TIMEOUT_MS: int(10, 60_000).default(1_000),
  COST_CAP_MAX_USD: z.coerce.number().positive().max(1_000).default(1),
  MAX_MESSAGES: int(1, 1_000).default(50),
  MAX_PROMPT_CHARS: int(1, 1_000_000).default(32_768),
  MAX_IMAGES: int(0, 100).default(4),
  MAX_BODY_BYTES: int(65_536, 20 * 1024 * 1024).default(65_536),
  SYSTEM_PROMPT: optionalText.pipe(z.string().max(8192).optional()),
  // Checked against the registry once it is parsed; unset: the default model only.
  ANON_MODELS: z
    .string()
    .optional()
    .transform((v) =>
      v === undefined
        ? undefined
        : v
            .split(",")
            .map((id) => id.trim())
            .filter(Boolean),
    ),
  ANON_COST_CAP_MAX_USD: z.coerce.number().positive().max(1_000).default(0.02),
  CORS_ORIGINS: z
    .string()
    .default("")
    .transform((v, ctx) =>
      v
        .split(",")
        .map((o) => o.trim())
        .filter(Boolean)
        .map((o) => {
          // An origin is scheme://host[:port] exactly, as browsers send it.
          if (originOf(o) !== o) ctx.addIssue({ code: "custom", message: `not an origin: ${o}` });
          return o;
        }),
    ),
  METRICS_TOKEN: optionalText,
  ADMIN_TOKEN: optionalText.pipe(z.string().min(32, "at least 32 characters").optional()),
  TURNSTILE_SECRET_KEY: optionalText,
  // Rendered into the page's HTML, so only the characters Cloudflare's keys are made of.
  TURNSTILE_SITE_KEY: optionalText.pipe(
    z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,128}$/)
      .optional(),
  ),
  TURNSTILE_VERIFY_URL: optionalText.pipe(z.url({ protocol: /^https?$/ }).optional()),
  METRICS_FLUSH_MS: int(0, 20_000).default(1_000),
  STORE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,32}$/)
    .default("mb"),
  BUDGET_USER_DAILY_USD: budgetUsd("1.00"),
  BUDGET_ANON_DAILY_USD: budgetUsd("0.05"),
  BUDGET_ANON_HOURLY_USD: budgetUsd("2.00"),
  BUDGET_GLOBAL_HOURLY_USD: budgetUsd("20.00"),
  BUDGET_SHARDS: int(1, 64).default(8),
  STREAM_RESUME_TTL_S: int(0, 86_400).default(600),
  STREAM_ORPHAN_GRACE_MS: int(0, 600_000).default(30_000),
});

/** The origin of `url`, or null when it is not a URL. */
function originOf(url: string): string | null {
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
}

const encoder = new TextEncoder();

function anonKey(secret: string | undefined, production: boolean): AnonKey {
  if (secret !== undefined) {
    if (encoder.encode(secret).byteLength >= MIN_SECRET_BYTES) {
      return { ok: true, key: encoder.encode(secret), generated: false };
    }
    // Set but too short is a mistake in every environment: replacing it with a random key would
    // hide it (and the tokens it was meant to keep valid would die with the isolate).
    return { ok: false, reason: `SECRET_KEY is shorter than ${MIN_SECRET_BYTES} bytes` };
  }
  if (production) return { ok: false, reason: "SECRET_KEY is not set" };
  // Development only: a key that lives as long as this isolate. Tokens die with it.
  return { ok: true, key: crypto.getRandomValues(new Uint8Array(32)), generated: true };
}

/** Shortest METRICS_TOKEN / ADMIN_TOKEN accepted in production. */
export const MIN_TOKEN_CHARS = 32;

/**
 * In production every address is https (a key set or store over plain http lets anyone on the
 * path forge users or limits) and every operator token long enough not to be guessed.
 */
function productionChecks(v: z.infer<typeof schema>, jwks: string | undefined): void {
  const urls = {
    OPENAI_BASE_URL: v.OPENAI_BASE_URL,
    SUPABASE_URL: v.SUPABASE_URL,
    SUPABASE_JWKS_URL: jwks,
    UPSTASH_REDIS_REST_URL: v.UPSTASH_REDIS_REST_URL,
    TURNSTILE_VERIFY_URL: v.TURNSTILE_VERIFY_URL,
  };
  for (const [name, url] of Object.entries(urls)) {
    if (url && !url.startsWith("https:"))
      throw new ConfigError(`${name} must be https in production`);
  }
  for (const [name, token] of Object.entries({
    METRICS_TOKEN: v.METRICS_TOKEN,
    ADMIN_TOKEN: v.ADMIN_TOKEN,
  })) {
    if (token && token.length < MIN_TOKEN_CHARS) {
      throw new ConfigError(`${name} must be at least ${MIN_TOKEN_CHARS} characters in production`);
    }
  }
}

/** Parses the environment into a Config; throws ConfigError naming each bad variable. */
export function parseConfig(env: Partial<Bindings>): Config {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const names = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid configuration: ${names.join("; ")}`);
  }
  const v = parsed.data;
  const production = v.ENVIRONMENT === "production";
  const base =
    v.SUPABASE_URL?.replace(/\/+$/, "") ??
    (v.SUPABASE_PROJECT_ID ? `https://${v.SUPABASE_PROJECT_ID}.supabase.co` : undefined);
  const jwks = v.SUPABASE_JWKS_URL ?? (base ? `${base}/auth/v1/.well-known/jwks.json` : undefined);
  if (v.UPSTASH_REDIS_REST_URL && !v.UPSTASH_REDIS_REST_TOKEN) {
    throw new ConfigError("UPSTASH_REDIS_REST_URL is set without UPSTASH_REDIS_REST_TOKEN");
  }
  if (!v.TURNSTILE_SECRET_KEY !== !v.TURNSTILE_SITE_KEY) {
    throw new ConfigError("TURNSTILE_SECRET_KEY and TURNSTILE_SITE_KEY must be set together");
  }
  if (production) productionChecks(v, jwks);
  const registry = registryOf(env, production);
  const anonModels = v.ANON_MODELS ?? [registry.defaultModel];
  for (const id of anonModels) {
    if (!registry.models.has(id)) {
      throw new ConfigError(`ANON_MODELS: ${id} is not in MODELS`, { public: true });
    }
  }
  return {
    environment: v.ENVIRONMENT,
    anonKey: anonKey(v.SECRET_KEY, production),
    supabase: {
      issuer: base ? `${base}/auth/v1` : undefined,
      jwksUrl: jwks ? new URL(jwks) : undefined,
      jwtSecret: v.SUPABASE_JWT_SECRET ? encoder.encode(v.SUPABASE_JWT_SECRET) : undefined,
    },
    upstash:
      v.UPSTASH_REDIS_REST_URL && v.UPSTASH_REDIS_REST_TOKEN
        ? { url: v.UPSTASH_REDIS_REST_URL, token: v.UPSTASH_REDIS_REST_TOKEN }
        : undefined,
    openai: { apiKey: v.OPENAI_API_KEY, baseUrl: v.OPENAI_BASE_URL.replace(/\/+$/, "") },
    rateLimitUser: v.RATE_LIMIT_USER,
    rateLimitIp: v.RATE_LIMIT_IP,
    rateLimitUsage: v.RATE_LIMIT_USAGE,
    anonQuotaHourly: v.ANON_QUOTA_HOURLY,
    anonQuotaTotal: v.ANON_QUOTA_TOTAL,
    anonSessionTtlSeconds: v.ANON_SESSION_TTL_SECONDS,
    anonSessionsPerIpHourly: v.ANON_SESSIONS_PER_IP_HOURLY,
    heartbeatIntervalMs: v.HEARTBEAT_INTERVAL_MS,
    streamMaxDurationMs: v.STREAM_MAX_DURATION_MS,
    upstreamIdleTimeoutMs: v.UPSTREAM_IDLE_TIMEOUT_MS,
    upstreamFirstTokenTimeoutMs: v.UPSTREAM_FIRST_TOKEN_TIMEOUT_MS,
    upstreamConnectTimeoutMs: v.UPSTREAM_CONNECT_TIMEOUT_MS,
    limitsTimeoutMs: v.LIMITS_TIMEOUT_MS,
    costCapMaxUsd: v.COST_CAP_MAX_USD,
    conversation: {
      maxMessages: v.MAX_MESSAGES,
      maxPromptChars: v.MAX_PROMPT_CHARS,
      systemPrompt: v.SYSTEM_PROMPT,
    },
    openAi: {
      maxImages: v.MAX_IMAGES,
      maxBodyBytes: v.MAX_BODY_BYTES,
    },
    anon: {
      models: new Set(anonModels),
      costCapMaxUsd: Math.min(v.ANON_COST_CAP_MAX_USD, v.COST_CAP_MAX_USD),
    },
    corsOrigins: v.CORS_ORIGINS,
    metricsToken: v.METRICS_TOKEN,
    turnstile:
      v.TURNSTILE_SECRET_KEY && v.TURNSTILE_SITE_KEY
        ? {
            secretKey: v.TURNSTILE_SECRET_KEY,
            siteKey: v.TURNSTILE_SITE_KEY,
            verifyUrl: v.TURNSTILE_VERIFY_URL ?? TURNSTILE_SITEVERIFY,
          }
        : undefined,
    adminToken: v.ADMIN_TOKEN,
    metricsFlushMs: v.METRICS_FLUSH_MS,
    storePrefix: v.STORE_PREFIX,
    budgets: {
      userDaily: v.BUDGET_USER_DAILY_USD,
      anonDaily: v.BUDGET_ANON_DAILY_USD,
      anonHourly: v.BUDGET_ANON_HOURLY_USD,
      globalHourly: v.BUDGET_GLOBAL_HOURLY_USD,
    },
    budgetShards: v.BUDGET_SHARDS,
    streamResumeTtlS: v.STREAM_RESUME_TTL_S,
    streamOrphanGraceMs: v.STREAM_ORPHAN_GRACE_MS,
    registry,
  };
}

/** The model registry of `env`; a bad one is a ConfigError whose message names the field. */
function registryOf(env: Partial<Bindings>, production: boolean): Registry {
  try {
    return parseRegistry(env as Record<string, unknown>, production);
  } catch (e) {
    if (e instanceof RegistryError) throw new ConfigError(e.message, { public: true });
    throw e;
  }
}

const cache = new WeakMap<object, Config | ConfigError>();

/**
 * The Config for this env object, parsed on first use and kept for the isolate's life.
 * A bad configuration is remembered too, so it is logged once, not on every request.
 */
export function configFor(
  env: Bindings,
): { config: Config; fresh: false } | { error: ConfigError; fresh: boolean } {
  const hit = cache.get(env);
  if (hit instanceof ConfigError) return { error: hit, fresh: false };
  if (hit) return { config: hit, fresh: false };
  try {
    const config = parseConfig(env);
    cache.set(env, config);
    return { config, fresh: false };
  } catch (e) {
    const error = e instanceof ConfigError ? e : new ConfigError("invalid configuration");
    cache.set(env, error);
    return { error, fresh: true };
  }
}
