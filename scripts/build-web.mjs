#!/usr/bin/env node
/**
 * @module Bundles the pages' scripts (web/<page>/ -> public/...) with esbuild: one ES module per
 * page, minified, no eval, no inline code (the CSP allows same-origin scripts only). The markdown
 * library and the sanitizer live in these bundles only, never in the Worker's. Run by wrangler's
 * [build] before `wrangler dev` and `wrangler deploy`, so nobody has to remember it.
 *
 * Usage: node scripts/build-web.mjs [--watch]
 */
import { fileURLToPath } from "node:url";
import { build, context } from "esbuild";

/** One line per page: its entry module and the bundle it becomes (gitignored: *.bundle.js, *.bundle.css). */
const ENTRIES = [
  { entry: "web/magic/main.ts", outfile: "public/magic/magic.bundle.js" },
  { entry: "web/ops/main.ts", outfile: "public/magic/ops/ops.bundle.js" },
  // Loaded by the chat page only when an answer has code (web/magic/code-colors.ts).
  { entry: "web/magic/highlight.ts", outfile: "public/magic/highlight.bundle.js" },
];

const options = (e) => ({
  entryPoints: [e.entry],
  outfile: e.outfile,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  sourcemap: "linked",
  legalComments: "linked",
  logLevel: "warning",
});

const root = fileURLToPath(new URL("..", import.meta.url));
process.chdir(root);
if (process.argv.includes("--watch")) {
  for (const e of ENTRIES) await (await context(options(e))).watch();
} else {
  const started = Date.now();
  await Promise.all(ENTRIES.map((e) => build(options(e))));
  console.log(`build-web: ${ENTRIES.length} bundle(s) in ${Date.now() - started} ms`);
}
