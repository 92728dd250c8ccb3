/**
 * @module `wrangler dev` for the bench: loopback, free ports, a fresh `--persist-to`, vars as
 * `--var`, every call home off; its JSON log lines counted as they arrive; its workerd found by
 * process group so its memory can be read.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { freePort } from "../../test/support/ports";
import { OFFLINE_WRANGLER_ENV, wranglerDevArgs } from "../../test/support/wrangler-dev";
import { onCleanup, processesInGroup, rssKib, sleep, spawnGroup, stopGroup } from "./procs";
import { summarize } from "./stats";

/** The bundled child-server script (set by bench/run.mjs). */
const SERVERS = join(process.env.BENCH_BUILD_DIR ?? "", "servers.mjs");

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching ANSI escapes is the point.
const ANSI = /\u001b\[[0-9;]*m/g;

/** One JSON log line of the worker. */
export type LogLine = Record<string, unknown> & { event?: string };

export interface WranglerDev {
  name: string;
  runtime: Runtime;
  url: string;
  /** The runtime's own inspector (miniflare runtime only). */
  inspectorPort: number | null;
  pgid: number;
  /** How many JSON log lines of each `event` arrived so far. */
  eventCounts: Map<string, number>;
  /** Subscribes to every JSON log line; returns the unsubscribe. */
  onLine(fn: (line: LogLine) => void): () => void;
  /** The workerd process that runs the user worker (the one with an inspector), if found. */
  workerPid(): number | undefined;
  /** RSS in KiB of the user worker's workerd and of every workerd of this wrangler dev. */
  rss(): { worker: number | null; allWorkerd: number };
  /** The last few KiB of stdout and stderr, for error messages. */
  tail(): string;
  stop(): Promise<void>;
}

/**
 * `wrangler-dev`: the `wrangler dev` command as a developer runs it. `no-inspector`: the same dev
 * server (wrangler's `unstable_startWorker`: its proxy, bundling and miniflare) without the
 * devtools inspector, which under `wrangler dev` relays every network event of the Worker to the
 * wrangler process (one HTTP request and one debug-log line each). `miniflare`: the Worker as
 * `wrangler deploy` bundles it on the Workers runtime alone (Miniflare, what `wrangler dev` runs
 * underneath), no dev proxy in front, with an inspector port for heap readings.
 */
export type Runtime = "wrangler-dev" | "no-inspector" | "miniflare";

export interface WranglerOptions {
  name: string;
  runtime?: Runtime;
  root: string;
  /** `-c` config path, relative to root; the project's wrangler.toml when absent. */
  config?: string;
  vars: Record<string, string>;
  timeoutMs?: number;
}

/**
 * Where each Worker's local state (Durable Objects' SQLite, D1, queues) lives: BENCH_STATE_DIR,
 * else memory (/dev/shm) where there is one, else the temp dir. Memory, as the Redis server
 * behind the Upstash store keeps nothing on disk: on a disk, every storage commit's fsync is the
 * VM's disk's work (measured on this machine: a Durable Object write cost 0.1 ms of first token
 * on /dev/shm and 1.5 to 6 ms on its disk, under load 60 ms per gateway stream), and the bench
 * would measure that disk, not the Worker. Production storage is no local disk.
 */
export function stateRoot(): string {
  if (process.env.BENCH_STATE_DIR) return process.env.BENCH_STATE_DIR;
  return existsSync("/dev/shm") ? "/dev/shm" : tmpdir();
}

/** Starts `wrangler dev` and resolves once `/healthz` answers 200. */
export async function startWranglerDev(o: WranglerOptions): Promise<WranglerDev> {
  const [port, inspectorPort] = [await freePort(), await freePort()];
  const persist = await mkdtemp(join(stateRoot(), `magic-bench-${o.name}-`));
  onCleanup(() => rm(persist, { recursive: true, force: true }));
  const runtime = o.runtime ?? "wrangler-dev";
  const configPath = resolve(o.root, o.config ?? "wrangler.toml");
  if (runtime !== "miniflare" && readFileSync(configPath, "utf8").includes("[[d1_databases]]")) {
    // The ledger's schema in the fresh local D1, as `npm run dev` applies it (the miniflare
    // runtime applies it itself, in bench/servers.ts).
    const migrated = spawnSync(
      process.execPath,
      [
        join(o.root, "node_modules/wrangler/bin/wrangler.js"),
        ...["d1", "migrations", "apply", "LEDGER_DB", "--local", "--persist-to", persist],
        ...["-c", configPath],
      ],
      { cwd: o.root, env: { ...process.env, ...OFFLINE_WRANGLER_ENV }, encoding: "utf8" },
    );
    if (migrated.status !== 0) {
      throw new Error(`d1 migrations (${o.name}) failed:\n${migrated.stderr}${migrated.stdout}`);
    }
  }
  const cliArgs = [
    join(o.root, "node_modules/wrangler/bin/wrangler.js"),
    ...wranglerDevArgs({ port, inspectorPort, persist, vars: o.vars, config: o.config }),
  ];
  const args =
    runtime === "wrangler-dev"
      ? cliArgs
      : [
          SERVERS,
          runtime === "miniflare" ? "miniflare" : "worker",
          JSON.stringify({
            root: o.root,
            config: resolve(o.root, o.config ?? "wrangler.toml"),
            port,
            inspectorPort,
            persist,
            vars: o.vars,
          }),
        ];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // wrangler's debug log (every inspector message under load: hundreds of MB) goes with the run.
    WRANGLER_LOG_PATH: join(persist, "wrangler-debug.log"),
    ...OFFLINE_WRANGLER_ENV,
  };
  const child = spawnGroup(`wrangler:${o.name}`, process.execPath, args, { cwd: o.root, env });
  child.stdin?.end();
  const pgid = child.pid as number;
  let tail = "";
  const keep = (text: string) => {
    tail = (tail + text).slice(-6000);
  };
  const eventCounts = new Map<string, number>();
  const listeners = new Set<(line: LogLine) => void>();
  // The Worker's JSON lines: console.log ones on stdout, console.warn/error ones on stderr.
  const lineReader = () => {
    let partial = "";
    return (data: string) => {
      keep(data);
      const lines = (partial + data).split("\n");
      partial = lines.pop() ?? "";
      for (const raw of lines) {
        // wrangler prints console.warn/error lines as "▲ [WARNING] {...}" / "✘ [ERROR] {...}",
        // coloured even with NO_COLOR.
        const text = raw
          .replace(ANSI, "")
          .replace(/^(▲ \[WARNING\]|✘ \[ERROR\])\s*/, "")
          .trim();
        if (!text.startsWith("{")) continue;
        let line: LogLine;
        try {
          line = JSON.parse(text) as LogLine;
        } catch {
          continue;
        }
        const event = typeof line.event === "string" ? line.event : "?";
        eventCounts.set(event, (eventCounts.get(event) ?? 0) + 1);
        for (const fn of listeners) fn(line);
      }
    };
  };
  child.stdout?.setEncoding("utf8").on("data", lineReader());
  child.stderr?.setEncoding("utf8").on("data", lineReader());

  const url = `http://127.0.0.1:${port}`;
  const stop = () => stopGroup(child);
  const deadline = Date.now() + (o.timeoutMs ?? 90_000);
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(`wrangler dev (${o.name}) exited early:\n${tail.slice(-3000)}`);
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`wrangler dev (${o.name}) did not answer /healthz:\n${tail.slice(-3000)}`);
    }
    await sleep(200);
  }

  const workerd = () => processesInGroup(pgid).filter((p) => p.comm === "workerd");
  let cachedPid: number | undefined;
  const workerPid = () => {
    if (cachedPid !== undefined && rssKib(cachedPid) !== null) return cachedPid;
    // Under wrangler two workerd: its proxy (on the public port) and the one running the Worker;
    // under miniflare one.
    const all = workerd();
    cachedPid = (
      all.length > 1 ? all.find((p) => !p.args.includes(`entry=127.0.0.1:${port} `)) : all[0]
    )?.pid;
    return cachedPid;
  };
  return {
    name: o.name,
    runtime,
    url,
    inspectorPort: runtime === "miniflare" ? inspectorPort : null,
    pgid,
    eventCounts,
    onLine(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    workerPid,
    rss() {
      const pid = workerPid();
      return {
        worker: pid === undefined ? null : rssKib(pid),
        allWorkerd: workerd().reduce((sum, p) => sum + (rssKib(p.pid) ?? 0), 0),
      };
    },
    tail: () => tail,
    stop,
  };
}

/** The median of five RSS readings of the Worker's workerd, 100 ms apart, in KiB. */
export async function steadyRss(dev: WranglerDev): Promise<number | null> {
  const values: number[] = [];
  for (let i = 0; i < 5; i++) {
    const v = dev.rss().worker;
    if (v !== null) values.push(v);
    await sleep(100);
  }
  return summarize(values).p50;
}
