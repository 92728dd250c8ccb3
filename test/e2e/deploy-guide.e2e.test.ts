/**
 * @module The deploy guide's `wrangler.toml` edits bundle: the README's marked toml blocks are
 * applied to a copy of wrangler.toml, and `wrangler deploy --dry-run` must accept it, for
 * production and for `--env staging`.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { OFFLINE_WRANGLER_ENV } from "../support/wrangler-dev";
import { ROOT } from "./dev-server";

// Next to wrangler.toml, so main, assets and migrations resolve the same way (gitignored).
const CONFIG = join(ROOT, "wrangler.guide-check.toml");
let outdir = "";

/** The toml block after `<!-- guide:<name> -->` in the README. */
function block(readme: string, name: string): string {
  const m = new RegExp(`<!-- guide:${name} -->\\s*\`\`\`toml\\n([\\s\\S]*?)\`\`\``).exec(readme);
  if (!m?.[1]) throw new Error(`README has no guide:${name} toml block`);
  return m[1];
}

function dryRun(args: string[]) {
  return new Promise<{ code: number; out: string }>((resolve) => {
    execFile(
      process.execPath,
      [
        join(ROOT, "node_modules/wrangler/bin/wrangler.js"),
        "deploy",
        "--dry-run",
        "--outdir",
        outdir,
        "-c",
        CONFIG,
        ...args,
      ],
      { cwd: ROOT, env: { ...process.env, ...OFFLINE_WRANGLER_ENV }, timeout: 120_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, out: `${stdout}${stderr}` }),
    );
  });
}

afterAll(async () => {
  await rm(CONFIG, { force: true });
  if (outdir) await rm(outdir, { recursive: true, force: true });
});

describe("the deploy guide", () => {
  it("edits wrangler.toml into a config that bundles, for production and staging", async () => {
    const readme = await readFile(join(ROOT, "README.md"), "utf8");
    let toml = await readFile(join(ROOT, "wrangler.toml"), "utf8");
    const lines = (s: string) => s.trim();
    expect(toml).toMatch(/^main = .*$/m);
    toml = toml.replace(/^(main = .*)$/m, `$1\n${lines(block(readme, "top"))}`);
    toml = toml.replace(/^database_id = .*$/m, lines(block(readme, "d1")));
    toml = toml.replace(/^\[vars\]$/m, `[vars]\n${lines(block(readme, "vars"))}`);
    toml = `${toml}\n${block(readme, "staging")}`;
    await writeFile(CONFIG, toml);
    outdir = await mkdtemp(join(tmpdir(), "magic-guide-dist-"));

    const production = await dryRun([]);
    expect(production.out).toContain("env.LEDGER_DB (magic-ledger)");
    expect(production.out).toContain("env.LEDGER_QUEUE (magic-ledger)");
    expect(production.out).toContain("--dry-run: exiting now.");
    expect(production.code).toBe(0);

    const staging = await dryRun(["--env", "staging"]);
    expect(staging.out).toContain("env.LEDGER_DB (magic-ledger-staging)");
    expect(staging.out).toContain("env.LEDGER_QUEUE (magic-ledger-staging)");
    expect(staging.out).toContain("env.LIMITS (LimitsStore)");
    expect(staging.code).toBe(0);
  });
});
