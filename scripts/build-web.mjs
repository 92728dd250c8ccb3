#!/usr/bin/env node
/**
 * @module Bundles the pages' scripts (web/<page>/ -> public/...) with esbuild: one ES module per
 * page, minified, no eval, no inline code (the CSP allows same-origin scripts only). The markdown
 * library and the sanitizer live in these bundles only, never in the Worker's. Run by wrangler's
 * [build] before `wrangler dev` and `wrangler deploy`, so nobody has to remember it.
 *
 * Source maps and the bundled licences (LEGAL.txt) are written only for local use (`wrangler
 * dev`, or a build by hand): a build for `wrangler deploy` (WRANGLER_COMMAND, set by wrangler)
 * writes neither, keeps the licence comments at the end of each bundle, and removes maps a local
 * build left in public/, so nothing but the pages is uploaded as public assets.
 *
 * A build whose inputs (web/, this script, the lockfile, tsconfig.json) and mode are those of the
 * last build, with its outputs still in place, is skipped: wrangler 4.86 runs [build] twice as
 * `wrangler dev` starts (before it starts, and again when its file watcher is ready).
 *
 * Usage: node scripts/build-web.mjs [--watch] [--force]
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build, context } from "esbuild";

/** One line per page: its entry module and the bundle it becomes (gitignored: *.bundle.js, *.bundle.css). */
const ENTRIES = [
  { entry: "web/magic/main.ts", outfile: "public/magic/magic.bundle.js" },
  { entry: "web/ops/main.ts", outfile: "public/magic/ops/ops.bundle.js" },
  // Loaded by the chat page only when an answer has code (web/magic/code-colors.ts).
  { entry: "web/magic/highlight.ts", outfile: "public/magic/highlight.bundle.js" },
];

/** Local builds (dev, by hand) get linked maps and LEGAL.txt; builds for a deploy get neither. */
const local = [undefined, "", "dev"].includes(process.env.WRANGLER_COMMAND);

const options = (e) => ({
  entryPoints: [e.entry],
  outfile: e.outfile,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  sourcemap: local ? "linked" : false,
  legalComments: local ? "linked" : "eof",
  metafile: true,
  logLevel: "warning",
});

const root = fileURLToPath(new URL("..", import.meta.url));
process.chdir(root);

/** What a build depends on, and where the last one is remembered (outside public/). */
const INPUTS = ["web", "scripts/build-web.mjs", "package-lock.json", "tsconfig.json"];
const STAMP = "node_modules/.cache/magic-box-build-web.json";

function files(path) {
  if (!existsSync(path)) return [];
  try {
    return readdirSync(path, { withFileTypes: true })
      .sort((a, b) => a.name.localeCompare(b.name))
      .flatMap((d) => files(join(path, d.name)));
  } catch {
    return [path];
  }
}

function fingerprint() {
  const hash = createHash("sha256").update(`local=${local}\n`);
  for (const file of INPUTS.flatMap(files)) hash.update(`${file}\n`).update(readFileSync(file));
  return hash.digest("hex");
}

/** Maps and licence files a local build left next to the bundles: not for a deploy. */
function removeLocalOnlyFiles() {
  for (const dir of new Set(ENTRIES.map((e) => dirname(e.outfile)))) {
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir)) {
      if (name.endsWith(".map") || name.endsWith(".LEGAL.txt")) rmSync(join(dir, name));
    }
  }
}

if (process.argv.includes("--watch")) {
  for (const e of ENTRIES) await (await context(options(e))).watch();
} else {
  const started = Date.now();
  const print = fingerprint();
  let last = null;
  try {
    last = JSON.parse(readFileSync(STAMP, "utf8"));
  } catch {
    // No earlier build.
  }
  if (
    !process.argv.includes("--force") &&
    last?.fingerprint === print &&
    Array.isArray(last.outputs) &&
    last.outputs.every((f) => existsSync(f))
  ) {
    console.log(`build-web: ${ENTRIES.length} bundle(s) up to date`);
  } else {
    if (!local) removeLocalOnlyFiles();
    const results = await Promise.all(ENTRIES.map((e) => build(options(e))));
    const outputs = results.flatMap((r) => Object.keys(r.metafile.outputs));
    mkdirSync(dirname(STAMP), { recursive: true });
    writeFileSync(STAMP, JSON.stringify({ fingerprint: print, outputs }));
    console.log(`build-web: ${ENTRIES.length} bundle(s) in ${Date.now() - started} ms`);
  }
}
