/**
 * @module Operator metrics: what one request adds to the counters, and how windows of counters
 * are summarised (percentiles from fixed histogram buckets) and rendered for Prometheus.
 */

/** Upper bounds (ms) of the latency histogram buckets; the last bucket is open-ended. */
export const LATENCY_BUCKETS_MS = [
  1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
] as const;

/** What one request contributes. Numbers only: no ids, tokens or text. */
export interface RequestMetrics {
  status: number;
  /** A stream request: a 200 counts as a stream started. */
  stream?: boolean;
  errorCode?: string;
  /** The budget that refused the request, if one did. */
  budgetRefused?: string;
  storeMs?: number;
  upstreamTtfbMs?: number;
  finishReason?: string;
  inputTokens?: number;
  outputTokens?: number;
  costMicroUsd?: number;
}

/** A flat counter set: field name to count. */
export type Counters = Record<string, number>;

function bucketField(name: string, ms: number): string {
  const le = LATENCY_BUCKETS_MS.find((b) => ms <= b);
  return `${name}_le_${le ?? "inf"}`;
}

/** The counter increments for one request. */
export function countersFor(m: RequestMetrics): Counters {
  const c: Counters = { requests: 1, [`status_${m.status}`]: 1 };
  if (m.errorCode) c[`error_${m.errorCode}`] = 1;
  if (m.budgetRefused) c[`budget_refused_${m.budgetRefused}`] = 1;
  if (m.stream && m.status === 200) c.streams_started = 1;
  if (m.storeMs !== undefined) c[bucketField("store_ms", m.storeMs)] = 1;
  if (m.upstreamTtfbMs !== undefined) c[bucketField("upstream_ttfb_ms", m.upstreamTtfbMs)] = 1;
  if (m.finishReason) {
    c.streams_finished = 1;
    c[`finish_${m.finishReason}`] = 1;
    c.input_tokens = m.inputTokens ?? 0;
    c.output_tokens = m.outputTokens ?? 0;
    c.cost_micro_usd = m.costMicroUsd ?? 0;
  }
  return c;
}

/** Adds `b` into `a`. */
export function addCounters(a: Counters, b: Counters): Counters {
  for (const [k, v] of Object.entries(b)) a[k] = (a[k] ?? 0) + v;
  return a;
}

interface Histogram {
  count: number;
  buckets: { le: string; count: number }[];
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
}

/** Percentiles as the upper bound of the bucket that holds them (a histogram's honest answer). */
export function histogram(c: Counters, name: string): Histogram {
  const les = [...LATENCY_BUCKETS_MS.map(String), "inf"];
  const buckets = les.map((le) => ({ le, count: c[`${name}_le_${le}`] ?? 0 }));
  const count = buckets.reduce((s, b) => s + b.count, 0);
  const at = (q: number): number | null => {
    if (count === 0) return null;
    let seen = 0;
    for (const b of buckets) {
      seen += b.count;
      if (seen >= q * count) return b.le === "inf" ? Number.POSITIVE_INFINITY : Number(b.le);
    }
    return null;
  };
  return { count, buckets, p50_ms: at(0.5), p95_ms: at(0.95), p99_ms: at(0.99) };
}

function pick(c: Counters, prefix: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(c))
    if (k.startsWith(prefix) && v !== 0) out[k.slice(prefix.length)] = v;
  return out;
}

/** The JSON view of one window's counters. */
export function summarise(c: Counters) {
  return {
    requests: c.requests ?? 0,
    by_status: pick(c, "status_"),
    by_error_code: pick(c, "error_"),
    streams: {
      started: c.streams_started ?? 0,
      finished: c.streams_finished ?? 0,
      by_finish_reason: pick(c, "finish_"),
    },
    tokens: { input: c.input_tokens ?? 0, output: c.output_tokens ?? 0 },
    cost_usd: (c.cost_micro_usd ?? 0) / 1e6,
    store_latency_ms: histogram(c, "store_ms"),
    upstream_ttfb_ms: histogram(c, "upstream_ttfb_ms"),
  };
}

/** Prometheus text exposition of the windows (gauges: each value is a count over its window). */
export function prometheus(windows: Record<string, Counters>): string {
  const lines: string[] = [];
  const gauge = (name: string, help: string) =>
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
  const series = (name: string, labels: Record<string, string>, value: number) => {
    const l = Object.entries(labels)
      .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, "_")}"`)
      .join(",");
    lines.push(`${name}{${l}} ${Number.isFinite(value) ? value : "+Inf"}`);
  };
  gauge("magicbox_requests", "API requests in the window, by status");
  for (const [w, c] of Object.entries(windows)) {
    for (const [status, n] of Object.entries(pick(c, "status_"))) {
      if (/^\d+$/.test(status)) series("magicbox_requests", { window: w, status }, n);
    }
  }
  gauge("magicbox_errors", "Error answers in the window, by error_code");
  for (const [w, c] of Object.entries(windows)) {
    for (const [code, n] of Object.entries(pick(c, "error_")))
      series("magicbox_errors", { window: w, error_code: code }, n);
  }
  gauge("magicbox_streams_finished", "Streams finished in the window, by finish_reason");
  for (const [w, c] of Object.entries(windows)) {
    for (const [reason, n] of Object.entries(pick(c, "finish_"))) {
      series("magicbox_streams_finished", { window: w, finish_reason: reason }, n);
    }
  }
  // Each family's HELP, TYPE and samples together: the exposition format requires it.
  gauge("magicbox_streams_started", "Streams started in the window");
  for (const [w, c] of Object.entries(windows)) {
    series("magicbox_streams_started", { window: w }, c.streams_started ?? 0);
  }
  gauge("magicbox_tokens", "Tokens metered in the window");
  for (const [w, c] of Object.entries(windows)) {
    series("magicbox_tokens", { window: w, kind: "input" }, c.input_tokens ?? 0);
    series("magicbox_tokens", { window: w, kind: "output" }, c.output_tokens ?? 0);
  }
  gauge("magicbox_cost_usd", "Cost metered in the window, USD");
  for (const [w, c] of Object.entries(windows)) {
    series("magicbox_cost_usd", { window: w }, (c.cost_micro_usd ?? 0) / 1e6);
  }
  // Real histograms (promtool rejects `_bucket` and `le` on a gauge, and `ms` in a name):
  // seconds, cumulative buckets and a count, per window. No `_sum`: only buckets are counted.
  for (const [name, family, help] of [
    ["store_ms", "magicbox_store_latency_seconds", "Limits store round trip, histogram"],
    [
      "upstream_ttfb_ms",
      "magicbox_upstream_ttfb_seconds",
      "Upstream time to response headers, histogram",
    ],
  ] as const) {
    lines.push(`# HELP ${family} ${help}`, `# TYPE ${family} histogram`);
    for (const [w, c] of Object.entries(windows)) {
      let cumulative = 0;
      for (const b of histogram(c, name).buckets) {
        cumulative += b.count;
        const le = b.le === "inf" ? "+Inf" : String(Number(b.le) / 1000);
        series(`${family}_bucket`, { window: w, le }, cumulative);
      }
      series(`${family}_count`, { window: w }, cumulative);
    }
  }
  return `${lines.join("\n")}\n`;
}

/** The windows reported, each made of buckets of one resolution plus the current partial one. */
const RESOLUTIONS = [
  { window: "minute", bucketMs: 10_000, count: 6 },
  { window: "hour", bucketMs: 60_000, count: 60 },
  { window: "day", bucketMs: 3_600_000, count: 24 },
] as const;

export type MetricWindow = (typeof RESOLUTIONS)[number]["window"];

/** The bucket keys a request at `now` increments, with how long each must live. */
export function writeBuckets(now: number): { key: string; ttlMs: number }[] {
  return RESOLUTIONS.map((r) => ({
    key: `${r.bucketMs}:${Math.floor(now / r.bucketMs)}`,
    ttlMs: r.bucketMs * (r.count + 2),
  }));
}

/** The bucket keys each window sums at `now`: the last `count` full buckets and the current one. */
export function readBuckets(now: number): Record<MetricWindow, string[]> {
  const out = {} as Record<MetricWindow, string[]>;
  for (const r of RESOLUTIONS) {
    const current = Math.floor(now / r.bucketMs);
    out[r.window] = Array.from({ length: r.count + 1 }, (_, i) => `${r.bucketMs}:${current - i}`);
  }
  return out;
}
