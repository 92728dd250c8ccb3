/** @module The one typed Hono environment: Bindings from `wrangler types`, Variables set by middleware. */
import type { Principal } from "./auth/principal";
import type { Config } from "./config";
import type { StreamRequest } from "./input/request";
import type { LimitGrant } from "./limits/middleware";
import type { Logger } from "./observe/log";
import type { AiBinding } from "./stream/registry";
import type { WireFormat } from "./stream/wire";

/** Secrets are not in wrangler.toml, so `wrangler types` cannot see them: declared here, all optional. */
export interface Secrets {
  SECRET_KEY?: string;
  SUPABASE_URL?: string;
  SUPABASE_PROJECT_ID?: string;
  SUPABASE_JWKS_URL?: string;
  SUPABASE_JWT_SECRET?: string;
  UPSTASH_REDIS_REST_URL?: string;
  UPSTASH_REDIS_REST_TOKEN?: string;
  OPENAI_API_KEY?: string;
  METRICS_TOKEN?: string;
  ADMIN_TOKEN?: string;
  /** Cloudflare Turnstile on minting: both keys or neither; the verify URL defaults to Cloudflare's. */
  TURNSTILE_SECRET_KEY?: string;
  TURNSTILE_SITE_KEY?: string;
  TURNSTILE_VERIFY_URL?: string;
}

/**
 * The model registry's vars (a `[vars]` table arrives as an object, `--var` or a secret as a JSON
 * string) and the `AI` binding, which wrangler.toml declares only when a workers-ai provider is
 * used: absent from a default wrangler.toml, so `wrangler types` cannot see them. The secrets
 * that `api_keys` and `$NAME` header values name are read by name from the same env.
 */
export interface RegistryVars {
  PROVIDERS?: string | Record<string, unknown>;
  MODELS?: string | Record<string, unknown>;
  DEFAULT_MODEL?: string;
  AI?: AiBinding;
}

/** Everything the Worker receives as `env`. */
export type Bindings = CloudflareBindings & Secrets & RegistryVars;

/** Per-request values, set once by the middleware that owns them. */
export interface Variables {
  config: Config;
  requestId: string;
  log: Logger;
  principal: Principal;
  /** The client's address as a limit key (IPv6 per /64). */
  clientIp: string;
  /** The validated stream request, whichever surface it came in. */
  streamInput: StreamRequest;
  /** How the stream is written back: chosen by the surface's input adapter. */
  wire: WireFormat;
  /** Set once the request passed its rate limits and quotas. */
  limits: LimitGrant;
}

/** The app environment every handler and middleware is typed with. */
export interface AppEnv {
  Bindings: Bindings;
  Variables: Variables;
}
