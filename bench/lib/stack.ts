/**
 * @module The loopback stack every bench script starts: a private redis-server, the local
 * Upstash-compatible REST server and the fake upstream (each in a child process), and the
 * gateway's vars for a production-like `wrangler dev`.
 */
import { join } from "node:path";
import { type RedisHandle, startRedis } from "../../test/support/redis";
import { getJson } from "./client";
import { onCleanup, spawnGroup, stopGroup } from "./procs";
import { stateRoot } from "./wrangler";

/** The repository root and the bundled child-server script (set by bench/run.mjs). */
export const ROOT = process.env.BENCH_ROOT ?? process.cwd();
const BUILD_DIR = process.env.BENCH_BUILD_DIR ?? "";

export const UPSTASH_TOKEN = "bench-upstash-token";
/** 48 bytes: a real secret, so the worker does not fall back to a per-isolate dev key. */
export const SECRET_KEY = "bench-secret-key-0123456789-abcdefghijklmnopqrstu";
export const SUPABASE_JWT_SECRET = "bench-supabase-jwt-secret-with-at-least-32-chars";

export interface Stack {
  redis: RedisHandle;
  /** Base URL of the local Upstash-compatible server. */
  upstashUrl: string;
  /** Base URL of the fake upstream (without /v1). */
  upstreamUrl: string;
}

/** Starts `bench/servers.ts <mode>` in its own process group and waits for its URL. */
export async function startChildServer(mode: string, args: string[] = []): Promise<string> {
  const child = spawnGroup(`server:${mode}`, process.execPath, [
    join(BUILD_DIR, "servers.mjs"),
    mode,
    ...args,
  ]);
  let err = "";
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    err = (err + d).slice(-4000);
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${mode} did not start: ${err}`)), 15_000);
    child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (line) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { url: string }).url);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${mode} exited (${code}): ${err}`));
    });
  });
  child.stdout?.resume();
  onCleanup(() => stopGroup(child));
  return url;
}

/** Starts redis, the Upstash-compatible server and the fake upstream. */
export async function startStack(): Promise<Stack> {
  const redis = await startRedis();
  onCleanup(() => redis.stop());
  const [upstashUrl, upstreamUrl] = await Promise.all([
    startChildServer("upstash", [String(redis.port), UPSTASH_TOKEN]),
    startChildServer("upstream"),
  ]);
  return { redis, upstashUrl, upstreamUrl };
}

/** Generous limits: every check still runs on every request, none refuses under bench load. */
export const GENEROUS_LIMITS = {
  RATE_LIMIT_USER: "1000000/30s",
  RATE_LIMIT_IP: "1000000/30s",
  ANON_QUOTA_HOURLY: "1000000",
  ANON_QUOTA_TOTAL: "100000000",
  ANON_SESSIONS_PER_IP_HOURLY: "1000000",
};

/**
 * The gateway's vars: a real upstream key and secret, the fake upstream, and either the Upstash
 * store (through `scope` of the local server) or, without `scope`, the Durable Object store.
 */
export function gatewayVars(
  stack: Stack,
  o: { prefix: string; scope?: string; extra?: Record<string, string> },
): Record<string, string> {
  return {
    ENVIRONMENT: "development",
    OPENAI_API_KEY: "sk-bench",
    OPENAI_BASE_URL: `${stack.upstreamUrl}/v1`,
    SECRET_KEY,
    SUPABASE_JWT_SECRET,
    STORE_PREFIX: o.prefix,
    ...GENEROUS_LIMITS,
    ...(o.scope
      ? {
          UPSTASH_REDIS_REST_URL: `${stack.upstashUrl}/__scope/${o.scope}`,
          UPSTASH_REDIS_REST_TOKEN: UPSTASH_TOKEN,
        }
      : {}),
    ...o.extra,
  };
}

/** Requests and commands the local Upstash server counted for `scope`. */
export async function upstashStats(
  stack: Stack,
  scope: string,
): Promise<{ requests: number; commands: number }> {
  const { body } = await getJson<{ requests: number; commands: number }>(
    `${stack.upstashUrl}/__test/stats?scope=${scope}`,
  );
  return body;
}

/** Mints `n` anonymous session tokens from the worker, each from `ip`. */
export async function mintTokens(workerUrl: string, n: number, ip: string): Promise<string[]> {
  const tokens: string[] = [];
  for (let i = 0; i < n; i++) {
    const { status, body } = await getJson<{ token?: string }>(`${workerUrl}/api/v1/anon_session`, {
      method: "POST",
      headers: { "content-type": "application/json", "cf-connecting-ip": ip },
      body: JSON.stringify({ ttl_seconds: 86_400 }),
    });
    if (status !== 200 || !body.token) throw new Error(`minting a token answered ${status}`);
    tokens.push(body.token);
  }
  return tokens;
}

/** The `sub` of a JWT (not verified: for keying results only). */
export function tokenSub(token: string): string {
  const payload = token.split(".")[1] ?? "";
  return (JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { sub: string }).sub;
}

/** Machine facts for the report. */
export async function machineInfo(): Promise<Record<string, unknown>> {
  const os = await import("node:os");
  const { readFileSync } = await import("node:fs");
  const { createRequire } = await import("node:module");
  const require = createRequire(join(ROOT, "package.json"));
  const version = (pkg: string) => {
    try {
      return (require(`${pkg}/package.json`) as { version: string }).version;
    } catch {
      return null;
    }
  };
  let redisVersion: string | null = null;
  try {
    const { execFileSync } = await import("node:child_process");
    redisVersion =
      /v=([\d.]+)/.exec(execFileSync("redis-server", ["--version"]).toString())?.[1] ?? null;
  } catch {
    // left null
  }
  let memTotal: number | null = null;
  try {
    memTotal =
      Number(/MemTotal:\s+(\d+)/.exec(readFileSync("/proc/meminfo", "utf8"))?.[1]) / 1024 / 1024;
  } catch {
    // left null
  }
  return {
    cpu: os.cpus()[0]?.model ?? "unknown",
    cores: os.cpus().length,
    memory_gib: memTotal === null ? null : Math.round(memTotal * 10) / 10,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    wrangler: version("wrangler"),
    miniflare: version("miniflare"),
    redis: redisVersion,
    state_dir: stateRoot(),
    loadavg_at_start: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

/** A Supabase-shaped user token signed with the legacy HS256 secret the bench gives the worker. */
export async function supabaseToken(
  secret = SUPABASE_JWT_SECRET,
  claims: Record<string, unknown> = {},
): Promise<string> {
  const { SignJWT } = await import("jose");
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    aud: "authenticated",
    role: "authenticated",
    sub: crypto.randomUUID(),
    iat: now,
    exp: now + 86_400,
    ...claims,
  })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(new TextEncoder().encode(secret));
}
