/* eslint-disable */
// Made by `npm run types` (scripts/types.mjs: wrangler types --include-runtime=false --strict-vars=false --env-interface CloudflareBindings --env-file=/dev/null) from wrangler.toml; do not edit, run it again (hash: d8622738dcc0b24776303310436654bd)
declare namespace Cloudflare {
	interface GlobalProps {
		mainModule: typeof import("./src/index");
		durableNamespaces: "LimitsStore" | "StreamOwner";
	}
	interface Env {
		LEDGER_DB: D1Database;
		LEDGER_QUEUE: Queue;
		ASSETS: Fetcher;
		ENVIRONMENT: string;
		RATE_LIMIT_USER: string;
		RATE_LIMIT_IP: string;
		RATE_LIMIT_USAGE: string;
		ANON_QUOTA_HOURLY: string;
		ANON_QUOTA_TOTAL: string;
		ANON_SESSION_TTL_SECONDS: string;
		ANON_SESSIONS_PER_IP_HOURLY: string;
		HEARTBEAT_INTERVAL_MS: string;
		STREAM_MAX_DURATION_MS: string;
		UPSTREAM_IDLE_TIMEOUT_MS: string;
		UPSTREAM_FIRST_TOKEN_TIMEOUT_MS: string;
		UPSTREAM_CONNECT_TIMEOUT_MS: string;
		LIMITS_TIMEOUT_MS: string;
		COST_CAP_MAX_USD: string;
		MAX_MESSAGES: string;
		MAX_PROMPT_CHARS: string;
		MAX_IMAGES: string;
		MAX_BODY_BYTES: string;
		SYSTEM_PROMPT: string;
		ANON_MODELS: string;
		ANON_COST_CAP_MAX_USD: string;
		CORS_ORIGINS: string;
		OPENAI_BASE_URL: string;
		STORE_PREFIX: string;
		METRICS_FLUSH_MS: string;
		BUDGET_USER_DAILY_USD: string;
		BUDGET_ANON_DAILY_USD: string;
		BUDGET_ANON_HOURLY_USD: string;
		BUDGET_GLOBAL_HOURLY_USD: string;
		BUDGET_SHARDS: string;
		STREAM_RESUME_TTL_S: string;
		STREAM_ORPHAN_GRACE_MS: string;
		LIMITS: DurableObjectNamespace<import("./src/index").LimitsStore>;
		STREAMS: DurableObjectNamespace<import("./src/index").StreamOwner>;
	}
}
interface CloudflareBindings extends Cloudflare.Env {}
declare module "*.lua" {
	const value: string;
	export default value;
}