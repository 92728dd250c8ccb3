#!/usr/bin/env node
/**
 * @module `npm run dev`: applies the ledger's migrations to the local D1, then runs `wrangler dev`
 * on 127.0.0.1 with the development settings of dev.defaults.vars, each as a `--var`, except the
 * ones your own variables set. wrangler lets a `--var` beat .dev.vars, so a setting you made
 * yourself (in .dev.vars, or in .env / .env.local when there is no .dev.vars, the files wrangler
 * reads) is not passed at all, and yours wins. wrangler.toml, production's defaults, is untouched.
 * (Not `--env-file`: Node 20 reads that flag out of any command line and stops when the file is
 * missing.)
 *
 * wrangler's calls home are off: metrics, error reports, the Request.cf fetch, and its update
 * check, which it makes to print its banner (WRANGLER_HIDE_BANNER).
 *
 * Usage: npm run dev [-- <wrangler dev flags>], e.g. npm run dev -- --port 8788
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";

// Run from the project's root, as `npm run` does (not from where this file lies: a copy of the
// project may link to it).
const WRANGLER = "node_modules/wrangler/bin/wrangler.js";
const env = {
  ...process.env,
  WRANGLER_SEND_METRICS: "false",
  WRANGLER_SEND_ERROR_REPORTS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  WRANGLER_HIDE_BANNER: "true",
};
const args = process.argv.slice(2);

/** KEY=VALUE lines of a dotenv file (comments and blank lines skipped), as wrangler reads them. */
function dotenv(file) {
  const vars = new Map();
  for (const line of readFileSync(file, "utf8").split(/\r?\n/)) {
    const m = /^\s*(?:export\s+)?([\w.-]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) vars.set(m[1], m[2].replace(/^(['"])(.*)\1$/, "$2"));
  }
  return vars;
}

/** The files wrangler dev reads your variables from: .dev.vars, or else .env and .env.local. */
const own = existsSync(".dev.vars") ? [".dev.vars"] : [".env", ".env.local"].filter(existsSync);
const yours = new Set(own.flatMap((f) => [...dotenv(f).keys()]));
const defaults = [...dotenv("dev.defaults.vars")].filter(([k]) => !yours.has(k));
const kept = [...dotenv("dev.defaults.vars").keys()].filter((k) => yours.has(k));
console.log(
  `npm run dev: ${defaults.map(([k, v]) => `${k}=${v}`).join(" ") || "no defaults"} (dev.defaults.vars)` +
    (kept.length ? `; yours from ${own.join(", ")}: ${kept.join(" ")}` : ""),
);

/** Runs wrangler with `argv`; resolves with its exit code. Ctrl-C reaches it through the terminal. */
function wrangler(argv, extraEnv = {}) {
  const child = spawn(process.execPath, [WRANGLER, ...argv], {
    stdio: "inherit",
    env: { ...env, ...extraEnv },
  });
  const forward = (signal) => child.kill(signal);
  process.on("SIGTERM", forward);
  return new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      process.off("SIGTERM", forward);
      resolve(code ?? (signal ? 1 : 0));
    });
  });
}

// The ledger's table in the same local state wrangler dev will use.
const at = args.indexOf("--persist-to");
const persist = at >= 0 && args[at + 1] ? ["--persist-to", args[at + 1]] : [];
const migrated = await wrangler(["d1", "migrations", "apply", "LEDGER_DB", "--local", ...persist], {
  CI: "true",
});
if (migrated !== 0) process.exit(migrated);
process.on("SIGINT", () => {});
const vars = defaults.flatMap(([k, v]) => ["--var", `${k}:${v}`]);
process.exit(await wrangler(["dev", "--ip", "127.0.0.1", ...vars, ...args]));
