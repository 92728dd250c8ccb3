#!/usr/bin/env node
/**
 * Runs one of the bench scripts (`bench`, `soak`, `drills`): bundles bench/*.ts for Node with
 * esbuild (the version wrangler already uses) into a temporary directory, then imports the entry.
 * The child servers (`servers`) are bundled in the same pass; BENCH_BUILD_DIR tells the scripts
 * where. Usage: node bench/run.mjs <bench|soak|drills> [args...]
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const ENTRIES = ["bench", "own-work", "soak", "drills", "openai-surface", "ledger", "servers"];
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const name = process.argv[2];
if (!name || !ENTRIES.includes(name) || name === "servers") {
  console.error(
    "usage: node bench/run.mjs <bench|own-work|soak|drills|openai-surface|ledger> [args...]",
  );
  process.exit(2);
}

// The heap probe speaks to the V8 inspector over WebSocket: a global in Node 22, a flag in Node 20.
if (typeof WebSocket === "undefined" && !process.execArgv.includes("--experimental-websocket")) {
  const child = spawn(
    process.execPath,
    [
      "--experimental-websocket",
      ...process.execArgv,
      fileURLToPath(import.meta.url),
      ...process.argv.slice(2),
    ],
    { stdio: "inherit" },
  );
  // Ctrl-C reaches the child through the terminal's process group; it cleans up and exits.
  process.on("SIGINT", () => {});
  process.on("SIGTERM", () => child.kill("SIGTERM"));
  child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  await main();
}

async function main() {
  const outdir = mkdtempSync(join(tmpdir(), "magic-bench-build-"));
  process.on("exit", () => rmSync(outdir, { recursive: true, force: true }));
  await build({
    absWorkingDir: root,
    entryPoints: ENTRIES.map((entry) => `bench/${entry}.ts`),
    outdir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    sourcemap: "inline",
    logLevel: "warning",
    // Bundled CommonJS dependencies may call require() for Node built-ins.
    banner: {
      js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
  });
  process.setSourceMapsEnabled(true);
  process.env.BENCH_BUILD_DIR = outdir;
  process.env.BENCH_ROOT = root;
  process.argv.splice(2, 1);
  await import(pathToFileURL(join(outdir, `${name}.mjs`)).href);
}
