/**
 * @module What every phase of `npm run bench` shares: the flags, the plan (counts and time
 * bounds), the run's clock and log, the targets and how one request is sent to them, and the
 * small tallies of results.
 */
import {
  completed,
  type StreamOptions,
  type StreamResult,
  streamRequest,
  type Target,
} from "../lib/client";
import { resultsDir } from "../lib/results-dir";
import { ROOT } from "../lib/stack";
import { round, type Summary } from "../lib/stats";
import type { Runtime, WranglerDev } from "../lib/wrangler";

const argv = process.argv.slice(2);
export const QUICK = argv.includes("--quick");
export const SKIP_MEMORY = argv.includes("--skip-memory");
export const PEER_DIR = (() => {
  const i = argv.indexOf("--peer-dir");
  return i >= 0 && argv[i + 1] ? (argv[i + 1] as string) : ROOT;
})();
export const OUT_DIR = resultsDir(argv, ROOT);

/** Counts and time bounds of each phase. */
export const PLAN = {
  warmupPerTarget: QUICK ? 15 : 25,
  latencyRounds: QUICK ? 50 : 300,
  latencyMaxMs: QUICK ? 15_000 : 150_000,
  concurrencies: [1, 16, 64],
  throughputRunMs: QUICK ? 600 : 1_000,
  throughputReps: 2,
  throughputMaxRequests: 20_000,
  roundTripSamples: QUICK ? 3 : 5,
  probeSamples: QUICK ? 100 : 400,
  longStreamTokens: 10_000,
  concurrentStreams: 200,
  /** Paired rounds of budgets on against off (Workers runtime alone). */
  abRounds: QUICK ? 50 : 800,
  abMaxMs: QUICK ? 10_000 : 100_000,
  /** Admissions of the Durable Object store: closed loops at these concurrencies, this long each. */
  admissionConcurrencies: [32, 64],
  admissionRunMs: QUICK ? 1_000 : 5_000,
  admissionReps: QUICK ? 1 : 2,
  admissionIdentities: QUICK ? 64 : 256,
};

/** The short stream of every latency and throughput request: 20 tokens, no delay. */
export const SHORT = "Say hello [[fake tokens=20 delay=0]]";
export const RUN = Date.now().toString(36);
export const T0 = Date.now();
export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
export const log = (msg: string) =>
  console.log(`[bench +${((Date.now() - T0) / 1000).toFixed(1)}s] ${msg}`);

export const RUNTIMES: { runtime: Runtime; title: string }[] = [
  { runtime: "wrangler-dev", title: "wrangler dev" },
  { runtime: "no-inspector", title: "dev server, inspector off" },
  { runtime: "miniflare", title: "Workers runtime alone" },
];

/** What a target is; the `-budgets-off` gateways run with all four BUDGET_* at "0". */
export type Role =
  | "floor"
  | "floor-store-trip"
  | "floor-do-trip"
  | "gateway-upstash"
  | "gateway-upstash-signed-in"
  | "gateway-upstash-budgets-off"
  | "gateway-upstash-signed-in-budgets-off"
  | "gateway-do";

export interface BenchTarget extends Target {
  label: string;
  runtime?: Runtime;
  role?: Role;
  tokens?: string[];
  dev?: WranglerDev;
  next: number;
}

/** A client address per request slot, from the benchmarking range 198.18.0.0/15. */
export const ipFor = (i: number) => `198.18.${(i >> 8) & 255}.${(i & 255) + 1}`;

/** Sends one request to `t`: its next token and one of 32 client addresses, round robin. */
export function send(t: BenchTarget, message: string, extra: Partial<StreamOptions> = {}) {
  const i = t.next++;
  return streamRequest(t, {
    message,
    token: t.tokens ? t.tokens[i % t.tokens.length] : undefined,
    ip: t.kind === "worker" ? ipFor(i % 32) : undefined,
    timeoutMs: 30_000,
    ...extra,
  });
}

/** A shuffled copy. */
export function shuffle<T>(items: T[]): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j] as T, a[i] as T];
  }
  return a;
}

/** Why a result is not a completed stream, for error tallies. */
export function failureKind(r: StreamResult): string {
  if (r.failure) return r.failure;
  if (r.status !== 200) return `${r.status}${r.errorCode ? ` ${r.errorCode}` : ""}`;
  if (r.terminal === "error") return `error frame ${r.errorCode ?? ""}`.trim();
  return r.terminal === null ? "no terminal event" : "no tokens";
}

/** Counts the results that are not completed streams, by why. */
export function tally(results: StreamResult[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) {
    if (completed(r)) continue;
    const k = failureKind(r);
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

export const errorCount = (errors: Record<string, number>) =>
  Object.values(errors).reduce((a, b) => a + b, 0);

/** A summary as the results file keeps it. */
export const summaryJson = (s: Summary, digits = 2) => ({
  n: s.n,
  p50: round(s.p50, digits),
  p95: round(s.p95, digits),
  p99: round(s.p99, digits),
  mean: round(s.mean, digits),
  max: round(s.max, digits),
});
export type SummaryJson = ReturnType<typeof summaryJson>;

/** KiB to MiB, keeping null. */
export const mib = (kib: number | null | undefined) =>
  kib === null || kib === undefined ? null : kib / 1024;
