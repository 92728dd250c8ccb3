/**
 * @module `npm run dev` as a new user runs it, in a copy of the project (its own .dev.vars and
 * .wrangler/state): generous minting by its own defaults, a .dev.vars that still wins, state that
 * survives a restart until the reset of docs/development.md, the page built once per start, no update check,
 * and no "types might be out of date" once a .dev.vars exists; `wrangler types` without our flags
 * cannot overwrite the generated types.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../support/ports";
import { killGroup, ROOT } from "./dev-server";
import { markedBlock, readDocs } from "./docs";

let dir: string;
let tmp: string;
let registry: Server;
let registryUrl: string;
/** Requests wrangler's update check made for its own package. */
let updateChecks = 0;

/** A copy of what `npm run dev` reads; sources, assets and node_modules are links to the repo's. */
async function projectCopy(): Promise<string> {
  const copy = await mkdtemp(join(tmpdir(), "magic-dev-"));
  await mkdir(join(copy, ".ci"));
  for (const f of [
    "wrangler.toml",
    "package.json",
    "package-lock.json",
    "tsconfig.json",
    "worker-configuration.d.ts",
    "dev.defaults.vars",
    ".ci/check-types",
  ]) {
    await copyFile(join(ROOT, f), join(copy, f));
  }
  for (const d of ["src", "public", "node_modules", "scripts", "web", "migrations"])
    await symlink(join(ROOT, d), join(copy, d));
  return copy;
}

/** Our switches against wrangler's other calls home, for the commands the tests run themselves. */
const QUIET = {
  WRANGLER_SEND_METRICS: "false",
  WRANGLER_SEND_ERROR_REPORTS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
};

/** Environment of a new user's shell: none of our wrangler switches, the registry on loopback. */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1", TMPDIR: tmp };
  for (const k of Object.keys(env)) if (/^(WRANGLER_|CLOUDFLARE_)/.test(k)) delete env[k];
  delete env.OPENAI_API_KEY;
  // wrangler's update check asks the npm registry that `rc("npm")` names: this one counts.
  env.npm_registry = registryUrl;
  return env;
}

interface Dev {
  url: string;
  output: () => string;
  stop: () => Promise<void>;
}

async function npmRunDev(): Promise<Dev> {
  const [port, inspector] = [await freePort(), await freePort()];
  const child: ChildProcess = spawn(
    "npm",
    ["run", "dev", "--", "--port", String(port), "--inspector-port", String(inspector)],
    { cwd: dir, env: userEnv(), detached: true, stdio: "pipe" },
  );
  child.stdin?.end();
  let output = "";
  child.stdout?.on("data", (d) => {
    output += String(d);
  });
  child.stderr?.on("data", (d) => {
    output += String(d);
  });
  const url = `http://127.0.0.1:${port}`;
  let status = 0;
  for (let i = 0; i < 300 && status !== 200 && child.exitCode === null; i++) {
    status = await fetch(`${url}/healthz`).then(
      (r) => r.status,
      () => 0,
    );
    if (status !== 200) await new Promise((r) => setTimeout(r, 150));
  }
  if (status !== 200) {
    await killGroup(child);
    throw new Error(`npm run dev did not start:\n${output.slice(-2000)}`);
  }
  return { url, output: () => output, stop: () => killGroup(child) };
}

/** Mints `n` sessions one after another; the statuses, in order. */
async function mints(url: string, n: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${url}/api/v1/anon_session`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    await res.body?.cancel();
    statuses.push(res.status);
  }
  return statuses;
}

/**
 * Runs a command without blocking this process (the stand-in registry lives here); never throws.
 */
function run(file: string, args: string[], env: NodeJS.ProcessEnv) {
  return new Promise<{ code: number; out: string }>((resolve) => {
    execFile(file, args, { cwd: dir, env, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

/** The sh block after `<!-- example:<name> -->` in the README or docs/. */
async function docsSh(name: string): Promise<string> {
  return markedBlock(await readDocs(), "example", name, "sh");
}

/** How often the page's build ran, and how often it really built, in a dev server's output. */
function builds(output: string): { ran: number; built: number } {
  return {
    ran: output.match(/build-web: \d+ bundle\(s\)/g)?.length ?? 0,
    built: output.match(/build-web: \d+ bundle\(s\) in \d+ ms/g)?.length ?? 0,
  };
}

beforeAll(async () => {
  dir = await projectCopy();
  tmp = await mkdtemp(join(tmpdir(), "magic-dev-tmp-"));
  registry = createServer((req, res) => {
    if (req.url?.startsWith("/wrangler")) updateChecks++;
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ "dist-tags": { latest: "99.0.0" } }));
  });
  await new Promise<void>((r) => registry.listen(0, "127.0.0.1", r));
  const address = registry.address();
  registryUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/`;
}, 30_000);

afterAll(async () => {
  await new Promise((r) => registry?.close(r));
  if (dir) await rm(dir, { recursive: true, force: true });
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe("npm run dev", () => {
  it("mints generously and runs in development by its own defaults; builds the page once; no update check", async () => {
    const dev = await npmRunDev();
    try {
      // Production's limit is 10 an hour per address; dev.defaults.vars raises it.
      expect(dev.output()).toContain(
        "npm run dev: ENVIRONMENT=development ANON_SESSIONS_PER_IP_HOURLY=1000 (dev.defaults.vars)",
      );
      expect(await mints(dev.url, 12)).toEqual(Array(12).fill(200));
      // ENVIRONMENT=development: the demo answers (production would be 503 model_unavailable).
      const res = await fetch(`${dev.url}/api/v1/anon_session`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: "{}",
      });
      const { token } = (await res.json()) as { token: string };
      const stream = await fetch(`${dev.url}/api/v1/stream?message=hi`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      expect(stream.status).toBe(200);
      expect(await stream.text()).toContain('"provider":"demo"');
      // wrangler runs [build] twice as dev starts; the second finds nothing to do.
      expect(builds(dev.output())).toMatchObject({ ran: 2 });
      expect(builds(dev.output()).built).toBeLessThanOrEqual(1);
      expect(dev.output()).not.toContain("update available");
    } finally {
      await dev.stop();
    }
    expect(updateChecks).toBe(0);
  }, 90_000);

  it("lets .dev.vars win over its defaults, keeps the count over a restart, says nothing of types", async () => {
    await writeFile(join(dir, ".dev.vars"), "ANON_SESSIONS_PER_IP_HOURLY=15\nSECRET_KEY=\n");
    const dev = await npmRunDev();
    try {
      // 13 minted in the first run (.wrangler/state survives a restart), 15 allowed by .dev.vars.
      expect(await mints(dev.url, 3)).toEqual([200, 200, 429]);
      expect(dev.output()).toContain("Using secrets defined in .dev.vars");
      expect(dev.output()).toContain("yours from .dev.vars: ANON_SESSIONS_PER_IP_HOURLY");
      expect(dev.output()).not.toMatch(/types (might be|looked) out of date/);
    } finally {
      await dev.stop();
    }
    expect(updateChecks).toBe(0);
  }, 90_000);

  it("starts from empty state after the documented reset", async () => {
    execFileSync("bash", ["-c", await docsSh("reset")], { cwd: dir });
    const dev = await npmRunDev();
    try {
      expect(await mints(dev.url, 15)).toEqual(Array(15).fill(200));
    } finally {
      await dev.stop();
    }
  }, 90_000);

  it("is what keeps wrangler from checking for updates (the control: without it, one check)", async () => {
    const before = updateChecks;
    const list = await run(
      process.execPath,
      ["node_modules/wrangler/bin/wrangler.js", "d1", "migrations", "list", "LEDGER_DB", "--local"],
      { ...userEnv(), ...QUIET },
    );
    expect(list.code, list.out).toBe(0);
    expect(list.out).toContain("update available 99.0.0");
    expect(updateChecks).toBe(before + 1);
  }, 90_000);
});

describe("the generated types", () => {
  it("cannot be overwritten by a bare `wrangler types`, and CI's check still passes", async () => {
    const before = await readFile(join(dir, "worker-configuration.d.ts"), "utf8");
    const quiet = { ...userEnv(), ...QUIET, WRANGLER_HIDE_BANNER: "true" };
    const bare = await run(
      process.execPath,
      ["node_modules/wrangler/bin/wrangler.js", "types"],
      quiet,
    );
    expect(bare.code).not.toBe(0);
    expect(bare.out).toContain("A non-Wrangler worker-configuration.d.ts already exists");
    expect(await readFile(join(dir, "worker-configuration.d.ts"), "utf8")).toBe(before);
    const check = await run("bash", [".ci/check-types"], quiet);
    expect(check.code, check.out).toBe(0);
  }, 60_000);
});
