/**
 * @module `npm run soak`: 2,000 streams at concurrency 64 with random client aborts against the
 * gateway (Upstash store, then Durable Object store), then checks: no 5xx, one ledger record per
 * stream started (nothing lost, nothing doubled), limits never exceeded, memory back to its
 * baseline. Limits are tight on purpose (a per-IP window and an anonymous total quota that the
 * load exhausts), so the soak also shows they hold exactly under concurrency.
 *
 * Runs on the miniflare runtime (the Worker as deployed, on workerd, no dev proxy), whose V8
 * inspector the soak holds: "memory back to its baseline" is read as the live JS heap after a
 * full collection (RSS is reported too, but V8 keeps the heap it grew, so RSS alone cannot tell).
 *
 * The control: the same abort mix, at the same concurrency and count, against the floor
 * (bench/floor/, a bare Worker that only re-frames the upstream's SSE) on the same runtime, with
 * the same heap readings. It has no limits or ledger, so only its memory applies: what the floor
 * keeps per stream its client left is what the runtime itself keeps, and the gateway is judged
 * on what it keeps beyond that.
 *
 * Flags: --store upstash|do|both (default both), --streams N (2000), --concurrency N (64),
 * --warmup N (800), --no-floor (skip the control), --floor-only (only the control),
 * --wrangler-dev or --no-inspector (run on that dev server instead; memory is then RSS only),
 * --out <dir>. The budget run (bench/soak/budget.ts) follows, per store: --budget-streams N
 * (2000), --budget-concurrency N (64), --no-budget (skip it), --budget-only (only it).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { connectResp, type RespValue } from "../test/support/resp";
import { agentFor, getJson, type StreamResult, streamRequest, type Target } from "./lib/client";
import { censusGrowth, connectHeapProbe, type HeapProbe } from "./lib/inspector";
import { cleanupAll, installCleanupHandlers, runMain, sleep } from "./lib/procs";
import { resultsDir } from "./lib/results-dir";
import {
  gatewayVars,
  machineInfo,
  mintTokens,
  ROOT,
  type Stack,
  startStack,
  tokenSub,
} from "./lib/stack";
import { round, summarize, table } from "./lib/stats";
import { type Runtime, startWranglerDev, steadyRss, type WranglerDev } from "./lib/wrangler";
import { budgetSoak, settle } from "./soak/budget";
import { type BudgetRunResult, statusCounts } from "./soak/budget-judge";
import { type AbortPlan, abortPlan } from "./soak/budget-plan";
import { readLedgerRecords } from "./soak/budget-read";
import { budgetMarkdown } from "./soak/budget-report";

installCleanupHandlers();

const argv = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] ? (argv[i + 1] as string) : fallback;
};
const STREAMS = Number(flag("--streams", "2000"));
const CONCURRENCY = Number(flag("--concurrency", "64"));
/** Warm-up streams before the baseline is read. */
const WARMUP = Number(flag("--warmup", "800"));
const FLOOR_ONLY = argv.includes("--floor-only");
const BUDGET_ONLY = argv.includes("--budget-only");
const WITH_FLOOR = FLOOR_ONLY || (!BUDGET_ONLY && !argv.includes("--no-floor"));
const SELECTED = flag("--store", "both") === "both" ? ["upstash", "do"] : [flag("--store", "both")];
const STORES = FLOOR_ONLY || BUDGET_ONLY ? [] : SELECTED;
const BUDGET_STORES = FLOOR_ONLY || argv.includes("--no-budget") ? [] : SELECTED;
const BUDGET_STREAMS = Number(flag("--budget-streams", "2000"));
const BUDGET_CONCURRENCY = Number(flag("--budget-concurrency", "64"));
const RUNTIME: Runtime = argv.includes("--wrangler-dev")
  ? "wrangler-dev"
  : argv.includes("--no-inspector")
    ? "no-inspector"
    : "miniflare";
const OUT_DIR = resultsDir(argv, ROOT);
const RUN = Date.now().toString(36);
const T0 = Date.now();
const log = (msg: string) =>
  console.log(`[soak +${((Date.now() - T0) / 1000).toFixed(1)}s] ${msg}`);

/** Tight limits the load runs into: 8 addresses × 220 < 2,000 and 40 identities × 45 < 2,000. */
const LIMITS = {
  RATE_LIMIT_USER: "1000000/30s",
  RATE_LIMIT_IP: "220/1d",
  ANON_QUOTA_HOURLY: "1000000",
  ANON_QUOTA_TOTAL: "45",
  ANON_SESSIONS_PER_IP_HOURLY: "1000000",
};
const IP_LIMIT = 220;
const QUOTA_TOTAL = 45;
const IDENTITIES = 40;
const ADDRESSES = Array.from({ length: 8 }, (_, i) => `198.19.0.${i + 1}`);
/** The live heap counts as back to its baseline within this much. */
const HEAP_TOLERANCE_MIB = 0.5;
/** Without a heap reading (dev-server runtimes), RSS within this much. */
const RSS_TOLERANCE_MIB = 16;

const rand = (n: number) => Math.floor(Math.random() * n);

/** The memory figures of a run, from its readings before and after; `left`: streams left by their client. */
function memoryFigures(start: MemoryReading, end: MemoryReading, left: number) {
  return {
    heap_baseline_mib: round(start.heapMib, 2),
    heap_after_mib: round(end.heapMib, 2),
    rss_baseline_mib: round((start.rssKib ?? 0) / 1024, 1),
    rss_after_mib: round((end.rssKib ?? 0) / 1024, 1),
    heap_growth_per_stream_left_by_its_client_kib:
      start.heapMib !== null && end.heapMib !== null && left > 0
        ? round(((end.heapMib - start.heapMib) * 1024) / left, 1)
        : null,
    /** What the live heap holds more of after the run than before it (heap snapshots). */
    heap_growth_by_kind: start.census && end.census ? censusGrowth(start.census, end.census) : null,
  };
}

type MemoryReading = Awaited<ReturnType<Awaited<ReturnType<typeof memoryProbe>>["read"]>>;

/**
 * Reads the Worker's memory: the live heap after a full collection and its census by kind (when
 * the runtime has an inspector, held open between readings), and the RSS of its workerd in KiB.
 */
async function memoryProbe(dev: WranglerDev) {
  const heap: HeapProbe | null =
    dev.inspectorPort === null ? null : await connectHeapProbe(dev.inspectorPort);
  return {
    held: heap !== null,
    read: async () => ({
      heapMib: heap ? (await heap.heapAfterGc()).usedMib : null,
      census: heap ? await heap.census() : null,
      rssKib: await steadyRss(dev),
    }),
    close: () => heap?.close(),
  };
}

interface Sent {
  i: number;
  streamId: string;
  token: number;
  ip: number;
  plan: AbortPlan;
  r: StreamResult;
}

/** One soak request: a random identity, address, length and abort plan. */
function soakRequest(
  t: Target,
  tokens: string[],
  i: number,
  addresses = ADDRESSES,
  label = "soak",
): Promise<Sent> {
  const token = rand(tokens.length);
  const ip = rand(addresses.length);
  const n = 5 + rand(56);
  // Slow enough that most clients leave while the upstream is still producing.
  const delay = 2 + rand(11);
  const streamId = `${label}-${RUN}-${i}`;
  const plan = abortPlan(Math.random());
  return streamRequest(t, {
    message: `Soak ${i} [[fake tokens=${n} delay=${delay}]]`,
    token: tokens[token],
    ip: addresses[ip],
    streamId,
    timeoutMs: 30_000,
    ...(plan === "abort_tokens" ? { abortAfterTokens: 1 + rand(n - 1) } : {}),
    ...(plan === "abort_ms" ? { abortAfterMs: rand(120) } : {}),
    ...(plan === "abort_before_headers" ? { abortBeforeHeadersMs: rand(15) } : {}),
  }).then((r) => ({ i, streamId, token, ip, plan, r }));
}

/** Reads every `<prefix>:ledger:*` record and the spend counters straight from redis. */
async function readUpstashLedger(stack: Stack, prefix: string, userKeys: string[]) {
  const conn = await connectResp({ port: stack.redis.port });
  try {
    const records = await readLedgerRecords(conn, prefix);
    const counters = (await conn.send([
      "MGET",
      ...userKeys.map((k) => `${prefix}:spend:${k}:streams`),
    ])) as RespValue[];
    const quotaUsed = (await conn.send([
      "MGET",
      ...userKeys.map((k) => `${prefix}:quota:${k}:total`),
    ])) as RespValue[];
    const num = (v: RespValue | undefined) => (v instanceof Buffer ? Number(v.toString()) : 0);
    return {
      records,
      spendStreams: userKeys.map((_, i) => num(counters[i])),
      quotaUsed: userKeys.map((_, i) => num(quotaUsed[i])),
    };
  } finally {
    await conn.close();
  }
}

async function soakOne(stack: Stack, store: "upstash" | "do") {
  const prefix = `soak${RUN}${store === "upstash" ? "u" : "d"}`;
  const dev = await startWranglerDev({
    name: `soak-${store}`,
    runtime: RUNTIME,
    root: ROOT,
    vars: {
      ...gatewayVars(stack, {
        prefix,
        ...(store === "upstash" ? { scope: `soak-${RUN}` } : {}),
      }),
      ...LIMITS,
    },
  });
  const ledgerFailures: string[] = [];
  const streamEnds = new Map<string, number>();
  dev.onLine((line) => {
    if (line.event === "ledger_write_failed") ledgerFailures.push(String(line.cause));
    if (line.event === "stream_end" && typeof line.stream_id === "string") {
      streamEnds.set(line.stream_id, (streamEnds.get(line.stream_id) ?? 0) + 1);
    }
  });
  const target: Target = { name: store, kind: "worker", url: dev.url, agent: agentFor(256) };

  // Warm-up with the soak's own mix and concurrency (anonymous callers running into their quota,
  // addresses running into their limit, client aborts), by identities and from addresses of its
  // own: every code path has run, so its compiled code and caches are in the baseline and the
  // soak shows only what grows per stream.
  log(`${store}: warm-up, ${WARMUP} streams`);
  const warmTokens = await mintTokens(dev.url, 16, "198.19.255.2");
  const warmIps = ["198.19.100.1", "198.19.100.2", "198.19.100.3"];
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < WARMUP) {
        await soakRequest(target, warmTokens, next++, warmIps, "warm");
      }
    }),
  );
  await sleep(1_500);
  const probe = await memoryProbe(dev);
  const start = await probe.read();
  const [heapBaseline, baseline] = [start.heapMib, start.rssKib];

  const tokens = await mintTokens(dev.url, IDENTITIES, "198.19.255.1");
  const userKeys = tokens.map((t) => `anonymous:${tokenSub(t)}`);
  const dayAtStart = Math.floor(Date.now() / 86_400_000);

  log(`${store}: ${STREAMS} streams at concurrency ${CONCURRENCY}`);
  const started = Date.now();
  const sent: Sent[] = [];
  let issued = 0;
  let peak = baseline ?? 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, dev.rss().worker ?? 0);
  }, 200);
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (issued < STREAMS && Date.now() - started < 150_000) {
        sent.push(await soakRequest(target, tokens, issued++));
      }
    }),
  );
  clearInterval(sampler);
  const loadMs = Date.now() - started;
  const crossedDay = Math.floor(Date.now() / 86_400_000) !== dayAtStart;

  // Settle: every stream the worker started ends with a stream_end line and its ledger write;
  // then 1.5 s more, so the memory read next is the live heap once every stream's waitUntil work
  // is over (metrics flush 1 s later), and RSS after a bounded wait.
  log(`${store}: settling`);
  await settle(() => [...streamEnds.keys()].filter((k) => k.startsWith("soak-")).length);
  const end = await probe.read();
  const heapAfter = end.heapMib;
  probe.close();
  let after = end.rssKib;
  const memDeadline = Date.now() + (probe.held ? 0 : 15_000);
  while (
    baseline !== null &&
    after !== null &&
    (after - baseline) / 1024 > RSS_TOLERANCE_MIB &&
    Date.now() < memDeadline
  ) {
    await sleep(1_000);
    after = await steadyRss(dev);
  }

  // What the clients saw.
  const ok = sent.filter((s) => s.r.status === 200);
  // A stream whose upstream failed before its first token (502 upstream_error) also leaves a
  // record: a zero-cost one that settles its budget hold. It is expected, not doubled.
  const failedUpstream = (s: Sent) => s.r.status === 502 && s.r.errorCode === "upstream_error";
  const startedIds = new Set(
    sent.filter((s) => s.r.status === 200 || failedUpstream(s)).map((s) => s.streamId),
  );
  const preHeader = new Set(
    sent.filter((s) => s.r.aborted === "before_headers").map((s) => s.streamId),
  );
  const statuses = statusCounts(sent);
  const fiveXx = sent.filter((s) => s.r.status >= 500).length;
  const transport = sent.filter((s) => s.r.failure !== null).length;
  const abortedAfterHeaders = ok.filter((s) => s.r.aborted === "after_headers").length;
  const incomplete = ok.filter((s) => s.r.aborted === null && s.r.terminal !== "done").length;

  // Limits, from the clients' side.
  const perToken = tokens.map((_, k) => ok.filter((s) => s.token === k).length);
  const perIp = ADDRESSES.map((_, k) => ok.filter((s) => s.ip === k).length);
  const ipBound = crossedDay ? 2 * IP_LIMIT : IP_LIMIT;
  const quotaHit = tokens
    .map((_, k) => k)
    .filter((k) => sent.some((s) => s.token === k && s.r.errorCode === "quota_exceeded"));
  const ipHit = ADDRESSES.map((_, k) => k).filter((k) =>
    sent.some((s) => s.ip === k && s.r.errorCode === "rate_limited"),
  );

  // The ledger, from the store's side.
  const soakEnds = [...streamEnds.entries()].filter(([k]) => k.startsWith("soak-"));
  let ledger: Record<string, unknown>;
  let serverPerToken: number[];
  if (store === "upstash") {
    const read = await readUpstashLedger(stack, prefix, userKeys);
    const soakRecords = read.records.filter((r) => r.streamId.startsWith("soak-"));
    const count = new Map<string, number>();
    for (const rec of soakRecords) count.set(rec.streamId, (count.get(rec.streamId) ?? 0) + 1);
    const lost = [...startedIds].filter((id) => !count.has(id));
    const doubled = [...count.entries()].filter(([, n]) => n > 1).map(([id]) => id);
    const unexpected = [...count.keys()].filter((id) => !startedIds.has(id) && !preHeader.has(id));
    serverPerToken = read.spendStreams;
    ledger = {
      source: "every <prefix>:ledger:* record read from redis, matched by stream_id",
      records: soakRecords.length,
      lost: lost.length,
      doubled: doubled.length,
      unexpected: unexpected.length,
      started_by_worker_though_client_left_first: [...preHeader].filter((id) => count.has(id))
        .length,
      stream_end_lines: soakEnds.length,
      stream_end_lines_without_record: soakEnds.filter(([id]) => !count.has(id)).length,
      spend_counters_sum: read.spendStreams.reduce((a, b) => a + b, 0),
      quota_used_max: Math.max(...read.quotaUsed),
      ledger_write_failed_lines: ledgerFailures.length,
      finish_reasons: Object.fromEntries(
        [...new Set(soakRecords.map((r) => r.finishReason))].map((f) => [
          f,
          soakRecords.filter((r) => r.finishReason === f).length,
        ]),
      ),
      lost_examples: lost.slice(0, 5),
      doubled_examples: doubled.slice(0, 5),
    };
  } else {
    // The Durable Object ledger is read per identity: GET /api/v1/usage shows spend.streams.
    serverPerToken = [];
    const quotaLeft: number[] = [];
    for (const token of tokens) {
      const { status, body } = await getJson<{
        spend?: { streams: number };
        quota?: { total: { remaining: number } };
      }>(`${dev.url}/api/v1/usage`, {
        headers: { authorization: `Bearer ${token}`, "cf-connecting-ip": "198.19.255.1" },
      });
      if (status !== 200) throw new Error(`usage answered ${status}`);
      serverPerToken.push(body.spend?.streams ?? -1);
      quotaLeft.push(body.quota?.total.remaining ?? -1);
    }
    let lost = 0;
    let doubled = 0;
    tokens.forEach((_, k) => {
      const seen =
        (perToken[k] ?? 0) + sent.filter((s) => s.token === k && failedUpstream(s)).length;
      const maybe = sent.filter((s) => s.token === k && s.r.aborted === "before_headers").length;
      const server = serverPerToken[k] ?? 0;
      if (server < seen) lost += seen - server;
      if (server > seen + maybe) doubled += server - seen - maybe;
    });
    const sum = serverPerToken.reduce((a, b) => a + b, 0);
    ledger = {
      source:
        "spend.streams of GET /api/v1/usage for each identity, against the streams its client saw start",
      records: sum,
      lost,
      doubled,
      started_by_worker_though_client_left_first: sum - ok.length - lost + doubled,
      stream_end_lines: soakEnds.length,
      stream_end_lines_vs_records: soakEnds.length - sum,
      quota_used_max: Math.max(...quotaLeft.map((x) => QUOTA_TOTAL - x)),
      ledger_write_failed_lines: ledgerFailures.length,
    };
  }
  await dev.stop();
  target.agent.destroy();

  const limits = {
    ip_limit: `${IP_LIMIT} per address per day (window 1d${crossedDay ? "; the run crossed midnight UTC, so the bound is 2 × limit" : ""})`,
    quota_total: QUOTA_TOTAL,
    max_started_per_address: Math.max(...perIp),
    max_started_per_identity: Math.max(...perToken),
    max_recorded_per_identity: Math.max(...serverPerToken),
    addresses_that_hit_their_limit: ipHit.length,
    identities_that_hit_their_quota: quotaHit.length,
    started_per_identity_that_hit_the_quota: summarize(quotaHit.map((k) => perToken[k] ?? 0)),
    exceeded:
      Math.max(...perIp) > ipBound ||
      Math.max(...perToken) > QUOTA_TOTAL ||
      // Records of streams whose upstream failed do not count: their quota unit came back.
      Math.max(
        ...serverPerToken.map(
          (n, k) => n - sent.filter((s) => s.token === k && failedUpstream(s)).length,
        ),
      ) > QUOTA_TOTAL ||
      ((ledger.quota_used_max as number) ?? 0) > QUOTA_TOTAL,
  };
  const heapBack =
    heapBaseline !== null && heapAfter !== null
      ? heapAfter - heapBaseline <= Math.max(HEAP_TOLERANCE_MIB, heapBaseline * 0.1)
      : null;
  const rssBack =
    baseline !== null && after !== null && (after - baseline) / 1024 <= RSS_TOLERANCE_MIB;
  const memory = {
    judged_by:
      heapBack === null
        ? `RSS, within ${RSS_TOLERANCE_MIB} MiB`
        : `live JS heap after a full collection, within ${HEAP_TOLERANCE_MIB} MiB (or 10 %)`,
    ...memoryFigures(start, { ...end, rssKib: after }, abortedAfterHeaders),
    rss_peak_mib: round(peak / 1024, 1),
    back_to_baseline: heapBack ?? rssBack,
  };
  return {
    store: store === "upstash" ? "Upstash" : "Durable Object",
    runtime: RUNTIME,
    streams_sent: sent.length,
    streams_started: ok.length,
    load_ms: loadMs,
    streams_per_s: round((sent.length / loadMs) * 1000, 1),
    statuses,
    aborted_after_headers: abortedAfterHeaders,
    aborted_before_headers: preHeader.size,
    started_without_terminal_event: incomplete,
    five_xx: fiveXx,
    transport_failures: transport,
    ledger,
    limits,
    memory,
    checks: {
      no_5xx: fiveXx === 0 && transport === 0,
      ledger_exact:
        ledger.lost === 0 &&
        ledger.doubled === 0 &&
        (ledger.unexpected ?? 0) === 0 &&
        ledgerFailures.length === 0,
      limits_held: !limits.exceeded,
      memory_back_to_baseline: memory.back_to_baseline,
      every_started_stream_ended: incomplete === 0,
    },
  };
}

/**
 * The control: the soak's abort mix against the floor on the same runtime. Only memory applies
 * (no limits, no ledger); the warm-up, the settling and the heap readings are the gateway's.
 */
async function soakFloor(stack: Stack) {
  const dev = await startWranglerDev({
    name: "soak-floor",
    runtime: RUNTIME,
    root: ROOT,
    config: "bench/floor/wrangler.toml",
    vars: { UPSTREAM_URL: `${stack.upstreamUrl}/v1` },
  });
  const target: Target = { name: "floor", kind: "floor", url: dev.url, agent: agentFor(256) };
  const run = async (count: number, label: string, sink?: Sent[]) => {
    let n = 0;
    const started = Date.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (n < count && Date.now() - started < 150_000) {
          const s = await soakRequest(target, [""], n++, ADDRESSES, label);
          sink?.push(s);
        }
      }),
    );
    return Date.now() - started;
  };
  log(`floor: warm-up, ${WARMUP} streams`);
  await run(WARMUP, "warm");
  await sleep(1_500);
  const probe = await memoryProbe(dev);
  const start = await probe.read();
  log(`floor: ${STREAMS} streams at concurrency ${CONCURRENCY}`);
  const sent: Sent[] = [];
  const loadMs = await run(STREAMS, "soak", sent);
  // The floor logs nothing at a stream's end: the longest stream (60 tokens, 12 ms apart) is
  // well under a second, so its last streams are over after the gateway's own settling time.
  await sleep(4_000);
  const end = await probe.read();
  probe.close();
  await dev.stop();
  target.agent.destroy();
  const abortedAfterHeaders = sent.filter(
    (s) => s.r.status === 200 && s.r.aborted === "after_headers",
  ).length;
  const problems = sent.filter(
    (s) => s.r.failure !== null || (s.r.status !== 200 && s.r.aborted !== "before_headers"),
  ).length;
  return {
    streams_sent: sent.length,
    streams_started: sent.filter((s) => s.r.status === 200).length,
    streams_per_s: round((sent.length / loadMs) * 1000, 1),
    aborted_after_headers: abortedAfterHeaders,
    aborted_before_headers: sent.filter((s) => s.r.aborted === "before_headers").length,
    failures: problems,
    memory: memoryFigures(start, end, abortedAfterHeaders),
  };
}

async function main() {
  const machine = await machineInfo();
  const stack = await startStack();
  const floor = WITH_FLOOR ? await soakFloor(stack) : null;
  if (floor) {
    log(
      `floor: live heap ${floor.memory.heap_baseline_mib} -> ${floor.memory.heap_after_mib} MiB, ` +
        `${floor.memory.heap_growth_per_stream_left_by_its_client_kib} KiB per stream its client left`,
    );
  }
  const runs: Awaited<ReturnType<typeof soakOne>>[] = [];
  for (const store of STORES) {
    if (store !== "upstash" && store !== "do") throw new Error(`unknown store ${store}`);
    runs.push(await soakOne(stack, store));
    log(`${store}: ${JSON.stringify(runs[runs.length - 1]?.checks)}`);
  }
  const budgetRuns: BudgetRunResult[] = [];
  for (const store of BUDGET_STORES) {
    if (store !== "upstash" && store !== "do") throw new Error(`unknown store ${store}`);
    const r = await budgetSoak(stack, store, {
      streams: BUDGET_STREAMS,
      concurrency: BUDGET_CONCURRENCY,
      runtime: RUNTIME,
      run: RUN,
      log,
    });
    budgetRuns.push(r);
    log(`budget ${store}: ${JSON.stringify(r.checks)}`);
  }
  machine.loadavg_at_end = os.loadavg().map((x) => Math.round(x * 100) / 100);
  await cleanupAll();
  const results = {
    generated_at: new Date().toISOString(),
    duration_s: Math.round((Date.now() - T0) / 1000),
    machine,
    plan: {
      streams: STREAMS,
      concurrency: CONCURRENCY,
      runtime:
        RUNTIME === "miniflare"
          ? "the miniflare runtime (the Worker as `wrangler deploy` bundles it, on workerd)"
          : RUNTIME === "no-inspector"
            ? "wrangler's dev server with the devtools inspector off"
            : "wrangler dev",
      stream: "5 to 60 tokens, 2 to 12 ms apart",
      warmup: `${WARMUP} streams of the same mix (16 other anonymous identities, 3 other addresses, so quotas and limits are hit too) before the memory baseline`,
      aborts:
        "10 % after 1..n-1 tokens, 10 % 0 to 120 ms after the headers, 3 % 0 to 15 ms after sending (before the headers)",
      limits: LIMITS,
      identities: IDENTITIES,
      addresses: ADDRESSES.length,
    },
    runs,
    /** The control: the same mix against the floor; memory only, not part of `passed`. */
    floor,
    /**
     * Live heap kept per stream whose client left after the headers: the gateway's, the floor's,
     * and the difference, which is the gateway's own. The memory check itself is absolute (the
     * gateway's heap back to its baseline), with no allowance for what the floor keeps.
     */
    memory_vs_floor: runs.map((r) => {
      const gw = r.memory.heap_growth_per_stream_left_by_its_client_kib;
      const fl = floor?.memory.heap_growth_per_stream_left_by_its_client_kib ?? null;
      return {
        store: r.store,
        gateway_kib_per_stream_left: gw,
        floor_kib_per_stream_left: fl,
        gateway_minus_floor_kib: gw !== null && fl !== null ? round(gw - fl, 1) : null,
      };
    }),
    /** The budget runs (bench/soak/budget.ts): spend against every budget, settlements. */
    budget_runs: budgetRuns,
    passed:
      runs.every((r) => Object.values(r.checks).every(Boolean)) &&
      budgetRuns.every((r) => Object.values(r.checks).every(Boolean)),
  };
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(join(OUT_DIR, "soak-latest.json"), `${JSON.stringify(results, null, 2)}\n`);
  const yes = (b: boolean) => (b ? "yes" : "**no**");
  const grewMost = (kinds: { kind: string; count: number; kib: number }[] | null) =>
    (kinds ?? [])
      .slice(0, 8)
      .map((k) => `${k.kind} +${k.count} (${k.kib} KiB)`)
      .join(", ");
  const floorKib = floor?.memory.heap_growth_per_stream_left_by_its_client_kib ?? null;
  const md = [
    `# Soak, ${results.generated_at.slice(0, 16).replace("T", " ")} UTC`,
    "",
    `${STREAMS} streams at concurrency ${CONCURRENCY} per store, ${results.plan.runtime}; ${results.plan.stream}; aborts: ${results.plan.aborts}. ` +
      `Limits: ${IP_LIMIT} streams per address per day over ${ADDRESSES.length} addresses, ${QUOTA_TOTAL} per anonymous identity over ${IDENTITIES}. Took ${results.duration_s} s on ${machine.cpu} × ${machine.cores}.`,
    "",
    table(
      [
        "store",
        "started / sent",
        "streams/s",
        "5xx",
        "ledger: records, lost, doubled",
        "max per address / identity",
        "live heap before → after (MiB)",
        "RSS before → peak → after (MiB)",
        "passed",
      ],
      runs.map((r) => [
        r.store,
        `${r.streams_started} / ${r.streams_sent}`,
        String(r.streams_per_s),
        String(r.five_xx + r.transport_failures),
        `${r.ledger.records}, ${r.ledger.lost}, ${r.ledger.doubled}`,
        `${r.limits.max_started_per_address} / ${r.limits.max_started_per_identity}`,
        `${r.memory.heap_baseline_mib ?? "–"} → ${r.memory.heap_after_mib ?? "–"}`,
        `${r.memory.rss_baseline_mib} → ${r.memory.rss_peak_mib} → ${r.memory.rss_after_mib}`,
        yes(Object.values(r.checks).every(Boolean)),
      ]),
    ),
    "",
    ...runs.map((r) => {
      const m = r.memory;
      const kinds = grewMost(m.heap_growth_by_kind);
      return (
        `- ${r.store}: ${r.streams_started} streams started, ${r.aborted_after_headers} left by their client after the headers, ${r.aborted_before_headers} before; ` +
        `429: ${Object.entries(r.statuses)
          .filter(([k]) => k.startsWith("429"))
          .map(([k, v]) => `${v} ${k.slice(4)}`)
          .join(", ")}; ledger_write_failed lines: ${r.ledger.ledger_write_failed_lines}. ` +
        `Memory judged by ${m.judged_by}: ${m.back_to_baseline ? "back" : "**not back**"}` +
        (m.heap_growth_per_stream_left_by_its_client_kib !== null
          ? `; the live heap grew ${round((m.heap_after_mib ?? 0) - (m.heap_baseline_mib ?? 0), 2)} MiB, about ${m.heap_growth_per_stream_left_by_its_client_kib} KiB per stream its client left` +
            (floorKib !== null ? ` (the floor control: ${floorKib} KiB)` : "")
          : "") +
        (kinds ? `; grew most: ${kinds}` : "")
      );
    }),
    ...(floor
      ? [
          `- Control, the floor (\`bench/floor/\`, a bare re-framing Worker; same mix, count, concurrency and runtime; memory only, not part of "passed"): ` +
            `${floor.streams_started} / ${floor.streams_sent} streams started, ${floor.aborted_after_headers} left by their client after the headers, ${floor.aborted_before_headers} before, ${floor.failures} failures; ` +
            `live heap ${floor.memory.heap_baseline_mib ?? "–"} → ${floor.memory.heap_after_mib ?? "–"} MiB` +
            (floorKib !== null ? `, about ${floorKib} KiB per stream its client left` : "") +
            `; RSS ${floor.memory.rss_baseline_mib} → ${floor.memory.rss_after_mib} MiB` +
            (floor.memory.heap_growth_by_kind
              ? `; grew most: ${grewMost(floor.memory.heap_growth_by_kind)}`
              : ""),
        ]
      : []),
    "",
    ...budgetMarkdown(budgetRuns, BUDGET_STREAMS, BUDGET_CONCURRENCY),
  ].join("\n");
  writeFileSync(join(OUT_DIR, "soak-latest.md"), `${md}\n`);
  console.log(`\n${md}`);
  log(`wrote ${join(OUT_DIR, "soak-latest.json")}`);
  if (!results.passed) process.exitCode = 1;
}

runMain(main);
