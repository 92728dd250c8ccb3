/** @module A private, throw-away redis-server on a free loopback port, killable and restartable for fault drills. */
import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort } from "./ports";
import { connectResp } from "./resp";

/** A running private redis-server. The port stays the same across `kill()`/`restart()`. */
export interface RedisHandle {
  readonly port: number;
  /** Shuts redis down gracefully (SIGTERM) and waits for the process to exit. */
  stop(): Promise<void>;
  /** Kills redis abruptly (SIGKILL), as a crash would, and waits for the process to exit. */
  kill(): Promise<void>;
  /** Starts redis again on the same port (stopping it first if it still runs); data is gone. */
  restart(): Promise<void>;
}

const INSTALL_HINT =
  "redis-server was not found on PATH. Install it (Debian/Ubuntu: `apt-get install -y redis-server`, " +
  "macOS: `brew install redis`) and run the tests again.";

/** Every child still alive, so a crashing test run does not leave redis-servers behind. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // "exit" handlers must be synchronous: a plain kill is all that can be done here.
  process.on("exit", () => {
    for (const child of live) child.kill("SIGKILL");
  });
}

function findOnPath(binary: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, binary);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      // Graceful shutdown stuck: do not let a test run hang on it.
      child.kill("SIGKILL");
    }, timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

async function waitForPing(port: number, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  let lastError = "";
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`redis-server on port ${port} exited during startup:\n${output()}`);
    }
    try {
      const conn = await connectResp({ port, timeoutMs: 500 });
      try {
        const reply = await conn.send(["PING"]);
        if (reply === "PONG") return;
        lastError = `PING answered ${String(reply)}`;
      } finally {
        await conn.close();
      }
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  child.kill("SIGKILL");
  throw new Error(
    `redis-server on port ${port} did not answer PING within 10 s (${lastError}):\n${output()}`,
  );
}

/**
 * Starts a private `redis-server` on a free loopback port with persistence off, and resolves
 * once it answers PING. Throws with install instructions when redis-server is not on PATH.
 */
export async function startRedis(): Promise<RedisHandle> {
  const binary = findOnPath("redis-server");
  if (!binary) throw new Error(INSTALL_HINT);
  installExitHook();
  const port = await freePort();
  let child: ChildProcess | undefined;
  let output = "";

  const spawnRedis = async (): Promise<void> => {
    output = "";
    const proc = spawn(
      binary,
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        // Nothing is persisted, but keep any stray file out of the working tree.
        "--dir",
        os.tmpdir(),
        "--loglevel",
        "warning",
      ],
      // stdout must be drained, or redis blocks once the pipe buffer fills.
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const keep = (chunk: Buffer): void => {
      // Keep only the tail: it is for error messages, not a log.
      output = (output + chunk.toString("utf8")).slice(-4000);
    };
    proc.stdout?.on("data", keep);
    proc.stderr?.on("data", keep);
    live.add(proc);
    proc.once("exit", () => live.delete(proc));
    await new Promise<void>((resolve, reject) => {
      proc.once("spawn", () => resolve());
      proc.once("error", (error: NodeJS.ErrnoException) =>
        reject(error.code === "ENOENT" ? new Error(INSTALL_HINT) : error),
      );
    });
    child = proc;
    await waitForPing(port, proc, () => output);
  };

  const terminate = async (signal: NodeJS.Signals): Promise<void> => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = waitForExit(proc, 5000);
    proc.kill(signal);
    await exited;
  };

  await spawnRedis();

  return {
    port,
    stop: () => terminate("SIGTERM"),
    kill: () => terminate("SIGKILL"),
    restart: async () => {
      await terminate("SIGTERM");
      await spawnRedis();
    },
  };
}
