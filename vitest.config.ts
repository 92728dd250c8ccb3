/** @module Vitest in workerd: the Worker under test plus the loopback servers of test/support. */
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

export default defineConfig({
  plugins: [
    cloudflareTest(async ({ inject }) => ({
      main: "./src/index.ts",
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        bindings: {
          // The default test env: development, DO store, fake upstream, Supabase via local JWKS.
          ENVIRONMENT: "development",
          // Exact counters right after each request; test/observe/metrics.test.ts covers batching.
          METRICS_FLUSH_MS: "0",
          SECRET_KEY: "test-secret-key-of-at-least-32-bytes!!",
          SUPABASE_URL: inject("supabaseUrl"),
          SUPABASE_JWKS_URL: inject("jwksUrl"),
          SUPABASE_JWT_SECRET: "super-secret-jwt-token-with-at-least-32-characters-long",
          OPENAI_API_KEY: "sk-test",
          OPENAI_BASE_URL: inject("upstreamUrl"),
          // Most tests stream as anonymous callers with any model and cap; the tests of these
          // two rules (test/input/model-and-cap.test.ts) run with their defaults.
          ANON_MODELS: "gpt-4o-mini,gpt-4o,gpt-4.1-mini,o4-mini,gpt-5-mini",
          ANON_COST_CAP_MAX_USD: "1",
          // A stream whose client left is cancelled this soon (production: 30 s), so the tests
          // of disconnects see the cancel without waiting; test/stream/ sets its own.
          STREAM_ORPHAN_GRACE_MS: "150",
          // The ledger's schema, applied to the local D1 by test/helpers/apply-migrations.ts.
          TEST_MIGRATIONS: await readD1Migrations("./migrations"),
        },
        // Deliver ledger batches at once, so a record reaches D1 soon after its stream.
        queueConsumers: { "magic-ledger": { maxBatchTimeout: 0.05, maxRetries: 2 } },
      },
    })),
  ],
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/e2e/**"],
    globalSetup: ["./test/support/global-setup.ts"],
    setupFiles: ["./test/helpers/apply-migrations.ts"],
    testTimeout: 20_000,
    // The worker logs a JSON line per request; show them only for failing tests.
    silent: "passed-only",
    hookTimeout: 30_000,
  },
});
