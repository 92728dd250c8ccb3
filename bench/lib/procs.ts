/**
 * @module Child processes of a bench run: each in its own process group, all of them stopped at
 * the end, on an error and on Ctrl-C; and their memory, read from /proc.
 */
import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every process group this run started and has not stopped yet. */
const groups = new Map<number, { name: string; child: ChildProcess }>();
/** Extra async cleanups (redis, temp dirs), run once. */
const cleanups: (() => Promise<void>)[] = [];
let cleaning: Promise<void> | undefined;

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is gone already.
  }
}

/** Spawns `command` as the leader of a new process group, registered for cleanup. */
export function spawnGroup(
  name: string,
  command: string,
  args: string[],
  options: SpawnOptions = {},
): ChildProcess {
  const child = spawn(command, args, { stdio: "pipe", ...options, detached: true });
  if (child.pid === undefined) throw new Error(`could not start ${name}`);
  const pid = child.pid;
  groups.set(pid, { name, child });
  return child;
}

/** Stops one group: SIGTERM, then SIGKILL after `graceMs` (workerd may outlive wrangler). */
export async function stopGroup(child: ChildProcess, graceMs = 4_000): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return;
  signalGroup(pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (alive(child) && Date.now() < deadline) await sleep(50);
  signalGroup(pid, "SIGKILL");
  groups.delete(pid);
}

/** Registers an async cleanup (run by `cleanupAll`, in reverse order). */
export function onCleanup(fn: () => Promise<void>): void {
  cleanups.push(fn);
}

/** Stops every registered group and runs the cleanups; safe to call more than once. */
export function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.allSettled([...groups.values()].map(({ child }) => stopGroup(child)));
    for (const fn of cleanups.reverse()) await fn().catch(() => {});
  })();
  return cleaning;
}

/** Runs a script's `main`, then stops everything it started; exits 1 on an error. */
export function runMain(main: () => Promise<void>): void {
  main()
    .then(() => cleanupAll())
    .then(() => process.exit(process.exitCode ?? 0))
    .catch(async (error: unknown) => {
      console.error(error);
      await cleanupAll();
      process.exit(1);
    });
}

/**
 * Makes sure nothing outlives the run: Ctrl-C / SIGTERM and uncaught errors stop every group
 * first; a plain exit SIGKILLs whatever is left (synchronously, all an exit handler can do).
 */
export function installCleanupHandlers(): void {
  const bail = (code: number) => {
    void cleanupAll().finally(() => process.exit(code));
  };
  process.once("SIGINT", () => {
    console.error("\ninterrupted: stopping child processes");
    bail(130);
  });
  process.once("SIGTERM", () => bail(143));
  process.on("uncaughtException", (error) => {
    console.error(error);
    bail(1);
  });
  process.on("unhandledRejection", (error) => {
    console.error(error);
    bail(1);
  });
  process.on("exit", () => {
    for (const pid of groups.keys()) signalGroup(pid, "SIGKILL");
  });
}

/** One process as /proc shows it. */
export interface ProcInfo {
  pid: number;
  ppid: number;
  pgid: number;
  comm: string;
  args: string;
}

/** Every process in process group `pgid`. */
export function processesInGroup(pgid: number): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // comm is in parentheses and may hold spaces: split after the last ")".
      const close = stat.lastIndexOf(")");
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      const fields = stat.slice(close + 2).split(" ");
      const ppid = Number(fields[1]);
      const group = Number(fields[2]);
      if (group !== pgid) continue;
      const args = readFileSync(`/proc/${entry}/cmdline`, "utf8").replace(/\0/g, " ").trim();
      out.push({ pid: Number(entry), ppid, pgid: group, comm, args });
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

/** Resident memory of a process in KiB (VmRSS), or null when it is gone. */
export function rssKib(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

export { sleep };
