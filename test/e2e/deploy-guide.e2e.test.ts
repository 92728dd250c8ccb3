/**
 * @module The deploy guide's `wrangler.toml` edits bundle: docs/deploy.md's marked toml blocks are
 * applied to a copy of wrangler.toml, and `npm run deploy -- --dry-run` must accept it without a
 * warning, for production and for `--env staging`; so must the Free plan's config without Queues.
 * A deploy's page build leaves no source map or LEGAL.txt among the public assets.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { OFFLINE_WRANGLER_ENV } from "../support/wrangler-dev";
import { ROOT } from "./dev-server";
import { readDoc } from "./docs";

// Next to wrangler.toml, so main, assets and migrations resolve the same way (gitignored).
const CONFIG = join(ROOT, "wrangler.guide-check.toml");
let outdir = "";

/** The toml block after `<!-- guide:<name> -->` in the deploy guide. */
function block(guide: string, name: string): string {
  const m = new RegExp(`<!-- guide:${name} -->\\s*\`\`\`toml\\n([\\s\\S]*?)\`\`\``).exec(guide);
  if (!m?.[1]) throw new Error(`docs/deploy.md has no guide:${name} toml block`);
  return m[1];
}

/** `npm run <script> -- --dry-run --outdir <dir> -c <CONFIG> [args]`: its exit code and output. */
function dryRun(script: string, args: string[] = []) {
  return new Promise<{ code: number; out: string }>((resolve) => {
    execFile(
      "npm",
      ["run", "--silent", script, "--", "--dry-run", "--outdir", outdir, "-c", CONFIG, ...args],
      { cwd: ROOT, env: { ...process.env, ...OFFLINE_WRANGLER_ENV }, timeout: 120_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, out: `${stdout}${stderr}` }),
    );
  });
}

/** Every file under `dir`, relative to it. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/** The `[vars]` keys of a toml text's top level. */
const topVars = (toml: string) =>
  [...(/^\[vars\]\n([\s\S]*?)(?=^\[)/m.exec(toml)?.[1] ?? "").matchAll(/^([A-Z_]+) = /gm)].map(
    (m) => m[1],
  );

afterAll(async () => {
  await rm(CONFIG, { force: true });
  if (outdir) await rm(outdir, { recursive: true, force: true });
});

describe("the deploy guide", () => {
  it("edits wrangler.toml into a config that bundles without a warning, for production and staging", async () => {
    const guide = await readDoc("docs/deploy.md");
    const original = await readFile(join(ROOT, "wrangler.toml"), "utf8");
    let toml = original;
    const lines = (s: string) => s.trim();
    expect(toml).toMatch(/^main = .*$/m);
    toml = toml.replace(/^(main = .*)$/m, `$1\n${lines(block(guide, "top"))}`);
    toml = toml.replace(/^database_id = .*$/m, lines(block(guide, "d1")));
    toml = toml.replace(/^\[vars\]$/m, `[vars]\n${lines(block(guide, "vars"))}`);
    toml = `${toml}\n${block(guide, "staging")}`;
    await writeFile(CONFIG, toml);
    outdir = await mkdtemp(join(tmpdir(), "magic-guide-dist-"));

    // Every variable of [vars] is repeated for staging (vars are not inherited).
    const staging = block(guide, "staging");
    const missing = topVars(original).filter((k) => !new RegExp(`^${k} = `, "m").test(staging));
    expect(missing, "variables of [vars] missing from the guide's staging block").toEqual([]);

    // A local build (as `npm run dev` makes) leaves source maps and licence files in public/.
    await new Promise<void>((resolve, reject) =>
      execFile(process.execPath, ["scripts/build-web.mjs"], { cwd: ROOT }, (e) =>
        e ? reject(e) : resolve(),
      ),
    );
    const local = await filesUnder(join(ROOT, "public"));
    expect(local.filter((f) => /\.map$|\.LEGAL\.txt$/.test(f)).length).toBeGreaterThan(0);

    const production = await dryRun("deploy");
    expect(production.out).toContain("env.LEDGER_DB (magic-ledger)");
    expect(production.out).toContain("env.LEDGER_QUEUE (magic-ledger)");
    // The worker's own defaults: production, and ten mints per address per hour.
    expect(production.out).toContain('env.ENVIRONMENT ("production")');
    expect(production.out).toContain('env.ANON_SESSIONS_PER_IP_HOURLY ("10")');
    expect(production.out).toContain("--dry-run: exiting now.");
    expect(production.out).not.toContain("[WARNING]");
    expect(production.code).toBe(0);

    const stage = await dryRun("deploy:staging");
    expect(stage.out).toContain("env.LEDGER_DB (magic-ledger-staging)");
    expect(stage.out).toContain("env.LEDGER_QUEUE (magic-ledger-staging)");
    expect(stage.out).toContain("env.LIMITS (LimitsStore)");
    expect(stage.out).toContain('env.STORE_PREFIX ("mbstaging")');
    expect(stage.out).not.toContain("[WARNING]");
    expect(stage.code).toBe(0);

    // The deploy's page build: no source map or licence file among the assets it uploads.
    const assets = await filesUnder(join(ROOT, "public"));
    expect(assets.some((f) => f.endsWith(".bundle.js"))).toBe(true);
    expect(assets.filter((f) => /\.map$|\.LEGAL\.txt$/.test(f))).toEqual([]);
  }, 240_000);

  it("runs without Queues on the Free plan: the two queue blocks deleted, the ledger goes to D1", async () => {
    const guide = await readDoc("docs/deploy.md");
    const free = /\*\*On the Workers Free plan\*\*[\s\S]*?\n\n/.exec(guide)?.[0] ?? "";
    expect(free).toContain("delete the `[[queues.producers]]` and\n`[[queues.consumers]]` blocks");
    const original = await readFile(join(ROOT, "wrangler.toml"), "utf8");
    const toml = original.replace(/^\[\[queues\.(producers|consumers)\]\]\n(?:[^\n[].*\n)*/gm, "");
    expect(toml).not.toContain("queues");
    await writeFile(CONFIG, toml);
    outdir ||= await mkdtemp(join(tmpdir(), "magic-guide-dist-"));
    const run = await dryRun("deploy");
    expect(run.out).toContain("env.LEDGER_DB (magic-ledger)");
    expect(run.out).not.toContain("LEDGER_QUEUE");
    expect(run.out).not.toContain("[WARNING]");
    expect(run.code).toBe(0);
  }, 120_000);
});
