/**
 * @module `npm run bench:ledger`: the durable ledger on the Workers runtime (Miniflare, the
 * Worker as `wrangler deploy` bundles it, local D1 and Queue). (1) The queue consumer's records
 * per second into local D1, in batches, end to end from the producer; (2) first token with the
 * queue send (it runs in waitUntil after the stream) against the same Worker without it.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { agentFor, streamRequest, type Target } from "./lib/client";
import { installCleanupHandlers, onCleanup, runMain } from "./lib/procs";
import { resultsDir } from "./lib/results-dir";
import { mintTokens, ROOT, SECRET_KEY, startChildServer } from "./lib/stack";
import { round, summarize } from "./lib/stats";

interface Mf {
  ready: Promise<URL>;
  dispose(): Promise<void>;
  getD1Database(name: string): Promise<D1Like>;
  getQueueProducer(name: string): Promise<{ sendBatch(m: { body: unknown }[]): Promise<void> }>;
}
interface D1Like {
  exec(sql: string): Promise<unknown>;
  prepare(sql: string): { first<T>(): Promise<T | null> };
}

const RECORDS = Number(process.env.LEDGER_BENCH_RECORDS ?? 10_000);
const ADMIN_TOKEN = "bench-admin-token-0123456789abcdef-0123";
const STREAMS = Number(process.env.LEDGER_BENCH_STREAMS ?? 300);
const toml = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
const date = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)?.[1];
const flags = [
  ...(/^compatibility_flags\s*=\s*\[([^\]]*)\]/m.exec(toml)?.[1] ?? "").matchAll(/"([^"]+)"/g),
].map((m) => m[1]);
const migrations = readdirSync(join(ROOT, "migrations"))
  .filter((f) => f.endsWith(".sql"))
  .sort()
  .map((f) => readFileSync(join(ROOT, "migrations", f), "utf8"));

/** Bundles the Worker exactly as a deploy would (also runs the [build] of the pages). */
function bundle(): string {
  const outdir = mkdtempSync(join(tmpdir(), "magic-bench-ledger-"));
  const built = spawnSync(
    process.execPath,
    [
      join(ROOT, "node_modules/wrangler/bin/wrangler.js"),
      "deploy",
      "--dry-run",
      "--outdir",
      outdir,
    ],
    { cwd: ROOT, encoding: "utf8" },
  );
  if (built.status !== 0) throw new Error(`bundling failed:\n${built.stderr}${built.stdout}`);
  return outdir;
}

/** The Worker on Miniflare, with (`queue`) or without the ledger queue; its D1 migrated. */
async function start(outdir: string, queue: boolean, batchSize: number, upstream: string) {
  const { Miniflare } = createRequire(join(ROOT, "package.json"))("miniflare") as {
    Miniflare: new (o: unknown) => Mf;
  };
  const mf = new Miniflare({
    modules: true,
    modulesRoot: outdir,
    scriptPath: join(outdir, "index.js"),
    compatibilityDate: date,
    compatibilityFlags: flags,
    bindings: {
      ENVIRONMENT: "development",
      SECRET_KEY,
      OPENAI_API_KEY: "sk-bench",
      OPENAI_BASE_URL: `${upstream}/v1`,
      RATE_LIMIT_USER: "1000000/30s",
      RATE_LIMIT_IP: "1000000/30s",
      ANON_QUOTA_HOURLY: "1000000",
      ANON_QUOTA_TOTAL: "100000000",
      METRICS_FLUSH_MS: "1000",
      ADMIN_TOKEN,
    },
    durableObjects: { LIMITS: { className: "LimitsStore", useSQLite: true } },
    d1Databases: { LEDGER_DB: "ledger-bench" },
    ...(queue
      ? {
          queueProducers: { LEDGER_QUEUE: { queueName: "magic-ledger" } },
          queueConsumers: { "magic-ledger": { maxBatchSize: batchSize, maxBatchTimeout: 0.05 } },
        }
      : {}),
    host: "127.0.0.1",
    port: 0,
    // The worker's JSON lines (one per request, per batch) would flood the report.
    log: undefined,
    handleRuntimeStdio: (stdout: NodeJS.ReadableStream, stderr: NodeJS.ReadableStream) => {
      stdout.resume();
      stderr.resume();
    },
  });
  const url = (await mf.ready).href.replace(/\/$/, "");
  onCleanup(() => mf.dispose());
  const db = await mf.getD1Database("LEDGER_DB");
  for (const sql of migrations)
    await db.exec(sql.replace(/--[^\n]*\n/g, "").replace(/\s*\n\s*/g, " "));
  return { mf, url, db };
}

const count = async (db: D1Like) =>
  (await db.prepare("SELECT COUNT(*) AS n FROM ledger").first<{ n: number }>())?.n ?? 0;

function record(i: number) {
  return {
    recordId: crypto.randomUUID(),
    streamId: `bench-${i}`,
    userKey: `anonymous:anon_${crypto.randomUUID()}`,
    model: ["gpt-4o-mini", "gpt-4o"][i % 2],
    provider: "openai",
    inputTokens: 20 + (i % 50),
    outputTokens: 100 + (i % 300),
    costMicroUsd: 40 + (i % 900),
    finishReason: "stop",
    usageSource: "upstream",
    startedAt: Date.now() - (i % 30) * 86_400_000,
    ttftMs: 12,
    durationMs: 400,
  };
}

/** Sends RECORDS messages (each twice: redelivery), waits until D1 holds each once. */
async function consumerThroughput(outdir: string, upstream: string, batchSize: number) {
  const { mf, db } = await start(outdir, true, batchSize, upstream);
  const producer = await mf.getQueueProducer("LEDGER_QUEUE");
  const records = Array.from({ length: RECORDS }, (_, i) => record(i));
  const t0 = performance.now();
  for (let i = 0; i < records.length; i += 100) {
    await producer.sendBatch(records.slice(i, i + 100).map((body) => ({ body })));
  }
  const sentMs = performance.now() - t0;
  let n = await count(db);
  while (n < RECORDS) {
    await new Promise((r) => setTimeout(r, 20));
    n = await count(db);
  }
  const allMs = performance.now() - t0;
  // Redelivery of every message: the count must not move.
  for (let i = 0; i < records.length; i += 100) {
    await producer.sendBatch(records.slice(i, i + 100).map((body) => ({ body })));
  }
  await new Promise((r) => setTimeout(r, 1500));
  const after = await count(db);
  await mf.dispose();
  return {
    batch_size: batchSize,
    records: RECORDS,
    send_ms: round(sentMs, 0),
    written_ms: round(allMs, 0),
    records_per_s: round((RECORDS / allMs) * 1000, 0),
    rows_after_redelivery: after,
    exactly_once: n === RECORDS && after === RECORDS,
  };
}

/**
 * The same idempotent insert without the Queue in front: RECORDS records posted to the replay
 * endpoint (POST /api/v1/admin/ledger) in batches of 100, one after the other.
 */
async function insertOnly(outdir: string, upstream: string) {
  const { url, db, mf } = await start(outdir, false, 100, upstream);
  const records = Array.from({ length: RECORDS }, (_, i) => record(i));
  const t0 = performance.now();
  for (let i = 0; i < records.length; i += 100) {
    const res = await fetch(`${url}/api/v1/admin/ledger`, {
      method: "POST",
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
      body: JSON.stringify({ records: records.slice(i, i + 100) }),
    });
    if (res.status !== 200) throw new Error(`replay answered ${res.status}`);
  }
  const ms = performance.now() - t0;
  const rows = await count(db);
  await mf.dispose();
  return {
    batch_size: 100,
    records: RECORDS,
    written_ms: round(ms, 0),
    records_per_s: round((RECORDS / ms) * 1000, 0),
    rows,
  };
}

/** First token of STREAMS streams, alternating between the Worker with and without the queue. */
async function firstToken(outdir: string, upstream: string) {
  const withQueue = await start(outdir, true, 100, upstream);
  const without = await start(outdir, false, 100, upstream);
  const targets = [withQueue, without].map((w, i) => ({
    target: {
      name: i ? "no-queue" : "queue",
      kind: "worker",
      url: w.url,
      agent: agentFor(4),
    } as Target,
    token: "",
    ttft: [] as (number | null)[],
  }));
  for (const t of targets) t.token = (await mintTokens(t.target.url, 1, "198.51.100.9"))[0] ?? "";
  for (let i = 0; i < STREAMS; i++) {
    for (const t of targets) {
      const r = await streamRequest(t.target, {
        message: `Tell me something [[fake tokens=20 id=l${i}-${t.target.name}]]`,
        token: t.token,
        ip: "198.51.100.9",
      });
      if (r.status !== 200 || r.terminal !== "done")
        throw new Error(`stream ${i}: ${r.status} ${r.errorCode}`);
      if (i >= 10) t.ttft.push(r.firstTokenMs); // the first few warm the isolate
    }
  }
  await new Promise((r) => setTimeout(r, 1500));
  const rows = await count(withQueue.db);
  const out = Object.fromEntries(
    targets.map((t) => {
      const s = summarize(t.ttft);
      return [
        t.target.name,
        {
          n: s.n,
          p50_ms: round(s.p50),
          p95_ms: round(s.p95),
          p99_ms: round(s.p99),
          mean_ms: round(s.mean),
        },
      ];
    }),
  );
  return { ...out, ledger_rows_with_queue: rows, streams: STREAMS };
}

installCleanupHandlers();
runMain(async () => {
  const outdir = bundle();
  const upstream = await startChildServer("upstream");
  const report = {
    bench: "ledger",
    at: new Date().toISOString(),
    consumer: [
      await consumerThroughput(outdir, upstream, 100),
      await consumerThroughput(outdir, upstream, 10),
    ],
    insert_only: await insertOnly(outdir, upstream),
    first_token: await firstToken(outdir, upstream),
  };
  console.log(JSON.stringify(report, null, 2));
  const out = resultsDir(process.argv.slice(2), ROOT);
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "ledger-latest.json"), `${JSON.stringify(report, null, 2)}\n`);
});
