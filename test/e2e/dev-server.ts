/** @module Runs `wrangler dev` offline for the browser tests: free ports, fresh state, captured stdout. */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { freePort } from "../support/ports";
import { OFFLINE_WRANGLER_ENV, wranglerDevArgs } from "../support/wrangler-dev";

/** The repository root (this file is test/e2e/dev-server.ts). */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** One JSON log line the worker wrote (`{"event": ..., ...}`). */
export type LogLine = Record<string, unknown> & { event?: string };

export interface DevServer {
  url: string;
  /** Everything wrangler wrote to stdout so far. */
  stdout(): string;
  /** The worker's JSON log lines on stdout so far. */
  logLines(): LogLine[];
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once("exit", () => resolve()));
}

/** Stops the whole process group (npx → wrangler → workerd): SIGTERM, then SIGKILL after 5 s. */
export async function killGroup(child: ChildProcess): Promise<void> {
  if (child.pid === undefined) return;
  const signal = (s: NodeJS.Signals) => {
    try {
      process.kill(-(child.pid as number), s);
    } catch {
      // The group is already gone.
    }
  };
  signal("SIGTERM");
  const done = await Promise.race([exited(child).then(() => true), sleep(5_000).then(() => false)]);
  // workerd may outlive wrangler for a moment; make sure nothing of the group stays behind.
  signal("SIGKILL");
  if (!done) await Promise.race([exited(child), sleep(2_000)]);
}

/** `wrangler d1 migrations apply --local` into `persist` (the directory wrangler dev will use). */
async function applyLocalMigrations(persist: string, env: NodeJS.ProcessEnv): Promise<void> {
  await promisify(execFile)(
    "npx",
    ["wrangler", "d1", "migrations", "apply", "LEDGER_DB", "--local", "--persist-to", persist],
    { cwd: ROOT, env, timeout: 60_000 },
  );
}

/**
 * Starts `npx wrangler dev` on 127.0.0.1 with `vars` passed as `--var KEY:VALUE` and a fresh
 * `--persist-to` directory (Durable Object state starts empty), without OPENAI_API_KEY so the
 * demo provider answers, and waits until /healthz answers 200. With `o.persist`, that directory
 * instead: the state of an earlier server there (a restart), kept when this one stops (the
 * caller removes it).
 */
export async function startWranglerDev(
  vars: Record<string, string>,
  timeoutMs = 45_000,
  o: { persist?: string } = {},
): Promise<DevServer> {
  const [port, inspectorPort] = [await freePort(), await freePort()];
  const persist = o.persist ?? (await mkdtemp(join(tmpdir(), "magic-e2e-state-")));
  const args = [
    "wrangler",
    // wrangler.toml ships ENVIRONMENT=production; local runs opt into development.
    ...wranglerDevArgs({
      port,
      inspectorPort,
      persist,
      vars: { ENVIRONMENT: "development", ...vars },
    }),
  ];
  const env: NodeJS.ProcessEnv = { ...process.env, ...OFFLINE_WRANGLER_ENV };
  delete env.OPENAI_API_KEY;
  // The ledger's schema in the fresh local D1, as `npm run dev` applies it.
  await applyLocalMigrations(persist, env);
  // detached: its own process group, so stop() reaches wrangler's workerd child too.
  const child = spawn("npx", args, { cwd: ROOT, env, detached: true, stdio: "pipe" });
  child.stdin?.end();
  let out = "";
  let err = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    err += d;
  });

  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    await killGroup(child);
    if (!o.persist) await rm(persist, { recursive: true, force: true });
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(`wrangler dev exited early (${child.exitCode}):\n${err.slice(-2000)}`);
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1_000) });
      if (res.status === 200) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `wrangler dev did not answer /healthz within ${timeoutMs} ms:\n${err.slice(-2000)}`,
      );
    }
    await sleep(150);
  }

  return {
    url,
    stdout: () => out,
    logLines: () =>
      out
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as LogLine];
          } catch {
            return [];
          }
        }),
    stop,
  };
}
