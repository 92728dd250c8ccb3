/** @module Applies the ledger's D1 migrations (migrations/) in workerd before each test file. */
import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";

const bindings = env as unknown as {
  LEDGER_DB: D1Database;
  TEST_MIGRATIONS: Parameters<typeof applyD1Migrations>[1];
};
await applyD1Migrations(bindings.LEDGER_DB, bindings.TEST_MIGRATIONS);
