/** @module What globalSetup hands to the tests through `provide`/`inject`. */
import type { JWK } from "jose";

declare module "vitest" {
  export interface ProvidedContext {
    /** Base URL of the local Upstash-compatible REST server. */
    upstashUrl: string;
    upstashToken: string;
    /** Port of the private redis-server behind it. */
    redisPort: number;
    /** Supabase project URL served by the local JWKS server (issuer is `${supabaseUrl}/auth/v1`). */
    supabaseUrl: string;
    jwksUrl: string;
    /** Private keys whose public halves the JWKS server publishes. */
    jwksPrivateKeys: { es256: JWK; rs256: JWK };
    /** Base URL (ending in /v1) of the fake OpenAI-compatible upstream. */
    upstreamUrl: string;
    /**
     * Base URL of a second Upstash-compatible server over a private redis that only
     * test/limits/redis-restart.test.ts uses: `POST /__test/redis {"action": "kill" | "restart"}`
     * kills or restarts that redis (same token as `upstashToken`).
     */
    drillUpstashUrl: string;
    /** The Turnstile siteverify stand-in (test/support/siteverify-server.ts). */
    siteverifyUrl: string;
    /** Two more fakes (no `/v1`) that read directives scoped `a.` and `b.`, for routes. */
    upstreamAUrl: string;
    upstreamBUrl: string;
    /** The fake Anthropic Messages API (no `/v1`). */
    anthropicUrl: string;
    /** A base URL (ending in /v1) where nothing listens: a refused connection. */
    deadUpstreamUrl: string;
  }
}
