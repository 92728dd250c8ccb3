/** @module Vitest in Node for the browser tests: Chromium (playwright-core) against `wrangler dev`. */
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/e2e/**/*.e2e.test.ts"],
    // One wrangler dev and one browser for the whole file; the tests share them in order.
    fileParallelism: false,
    testTimeout: 20_000,
    hookTimeout: 60_000,
  },
});
