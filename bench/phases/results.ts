/**
 * @module The bench's figures from its raw samples: latency per target, what each Worker adds
 * over the floor and over direct (budgets on and off side by side), throughput with CPU per
 * stream, and the store's round trips.
 */
import { completed, type StreamResult } from "../lib/client";
import type { Stack } from "../lib/stack";
import { round, type Summary, summarize } from "../lib/stats";
import { type BenchTarget, type SummaryJson, summaryJson, tally } from "./common";
import type { LoopTotals } from "./load";
import type { RoundTrips } from "./round-trips";
import type { RuntimeSet } from "./runtime-set";

/** The raw samples the figures come from. */
export interface Samples {
  stack: Stack;
  sets: RuntimeSet[];
  latencyTargets: BenchTarget[];
  loadTargets: BenchTarget[];
  latency: { rounds: number; results: Map<string, StreamResult[]> };
  throughput: Map<string, Map<number, LoopTotals>>;
  portkey: BenchTarget | undefined;
  firstStream: RoundTrips;
  anon: RoundTrips[];
  user: RoundTrips[];
  anonOff: RoundTrips[];
  userOff: RoundTrips[];
  pipelineProbe: Summary;
  access: Map<string, { store: number[]; upstream: number[] }>;
}

/** The Workers of a runtime set whose time to first token is compared with the floor. */
export const setTargets = (s: RuntimeSet) => [
  s.floor,
  s.floorTrip,
  s.floorDoTrip,
  s.gwUp,
  s.gwUser,
  s.gwUpOff,
  s.gwUserOff,
  s.gwDo,
];

const dist = (xs: number[]) => {
  const s = summarize(xs);
  return { min: s.min, p50: s.p50, max: s.max };
};

/** Round trips of a set of streams, as the results file keeps them. */
const tripsJson = (xs: RoundTrips[]) => ({
  samples: xs.length,
  before_first_byte: dist(xs.map((x) => x.beforeFirstByte)),
  before_first_token: dist(xs.map((x) => x.beforeFirstToken)),
  right_after_the_stream: dist(xs.map((x) => x.atEnd)),
  in_wait_until: dist(xs.map((x) => x.inWaitUntil)),
  commands_before_first_byte: dist(xs.map((x) => x.commandsBeforeFirstByte)),
  commands_in_wait_until: dist(xs.map((x) => x.commandsInWaitUntil)),
});

/** The figures. */
export function measurements(m: Samples) {
  const { sets, latencyTargets, loadTargets, latency, throughput, portkey } = m;
  const { firstStream, anon, user, anonOff, userOff, pipelineProbe, access } = m;
  const lat: Record<
    string,
    {
      n: number;
      errors: Record<string, number>;
      ttft_ms: SummaryJson;
      full_ms: SummaryJson;
      headers_ms: SummaryJson;
    }
  > = {};
  for (const t of latencyTargets) {
    const rs = latency.results.get(t.name) ?? [];
    const ok = rs.filter(completed);
    lat[t.name] = {
      n: rs.length,
      errors: tally(rs),
      ttft_ms: summaryJson(summarize(ok.map((r) => r.firstTokenMs))),
      full_ms: summaryJson(summarize(ok.map((r) => r.endMs))),
      headers_ms: summaryJson(summarize(ok.map((r) => r.headersMs))),
    };
  }
  const diff = (
    a: string,
    b: string,
    k: "p50" | "p95",
    what: "ttft_ms" | "full_ms" = "ttft_ms",
  ) => {
    const x = lat[a]?.[what][k];
    const y = lat[b]?.[what][k];
    return x === null || x === undefined || y === null || y === undefined ? null : round(x - y);
  };
  const overhead: Record<string, Record<string, number | null>> = {};
  for (const s of sets) {
    for (const t of setTargets(s)) {
      const gateway = t !== s.floor && t !== s.floorTrip && t !== s.floorDoTrip;
      overhead[t.name] = {
        ttft_over_floor_p50: t === s.floor ? null : diff(t.name, s.floor.name, "p50"),
        ttft_over_floor_p95: t === s.floor ? null : diff(t.name, s.floor.name, "p95"),
        // The gateway's own work: what it adds over the floor that pays one store round trip.
        // The gateway's own work: what it adds over the floor that pays one round trip to its
        // store (the Upstash PING, or one trivial Durable Object call for the Durable Object store).
        ttft_over_floor_with_store_trip_p50: gateway
          ? diff(t.name, (t === s.gwDo ? s.floorDoTrip : s.floorTrip).name, "p50")
          : null,
        ttft_over_direct_p50: diff(t.name, "direct", "p50"),
        ttft_over_direct_p95: diff(t.name, "direct", "p95"),
        full_over_floor_p50: t === s.floor ? null : diff(t.name, s.floor.name, "p50", "full_ms"),
      };
    }
  }
  if (portkey) {
    overhead.portkey = {
      ttft_over_direct_p50: diff("portkey", "direct", "p50"),
      ttft_over_direct_p95: diff("portkey", "direct", "p95"),
    };
  }

  const tput: Record<string, Record<string, unknown>> = {};
  for (const t of loadTargets) {
    const row: Record<string, unknown> = {};
    for (const [c, s] of throughput.get(t.name) ?? []) {
      const ok = s.results.filter(completed);
      row[`c${c}`] = {
        streams_per_s: round((ok.length / s.ms) * 1000, 1),
        completed: ok.length,
        errors: s.results.length - ok.length,
        error_kinds: tally(s.results),
        ttft_p50_ms: round(summarize(ok.map((r) => r.firstTokenMs)).p50),
        full_p50_ms: round(summarize(ok.map((r) => r.endMs)).p50),
        full_p95_ms: round(summarize(ok.map((r) => r.endMs)).p95),
        /** CPU of the Worker's workerd per completed stream (its Durable Objects included). */
        cpu_ms_per_stream:
          s.cpuMs === null || ok.length === 0 ? null : round(s.cpuMs / ok.length, 3),
      };
    }
    tput[t.name] = row;
  }

  const roundTrips = {
    method:
      "one stream at a time against the Upstash gateway under wrangler dev, after 1.3 s without any store request; requests counted at the local Upstash server (its own scope) when the response headers arrive, at the first token (80 ms later), right after the stream ended (the ledger), and after 1.3 s more without any (the metrics batch, flushed once per isolate per METRICS_FLUSH_MS = 1 s, so a lone stream pays for it alone; under load it is shared by every request of that second); budgets on (the defaults) and, on a gateway of its own, off",
    first_stream_after_start: firstStream,
    anonymous: tripsJson(anon),
    signed_in: tripsJson(user),
    anonymous_budgets_off: tripsJson(anonOff),
    signed_in_budgets_off: tripsJson(userOff),
  };
  const workerStoreMs: Record<string, SummaryJson> = {};
  const workerUpstreamMs: Record<string, SummaryJson> = {};
  for (const [name, slot] of access) {
    workerStoreMs[name] = summaryJson(summarize(slot.store));
    workerUpstreamMs[name] = summaryJson(summarize(slot.upstream));
  }
  const store = {
    round_trips: roundTrips,
    node_to_upstash_pipeline_ms: summaryJson(pipelineProbe, 3),
    worker_rate_limit_call_ms: workerStoreMs,
    worker_upstream_headers_ms: workerUpstreamMs,
    note: "worker_* come from the gateways' access lines (store_ms: the rate-limit call; upstream_ttfb_ms: from the handler to the upstream's headers), whole ms, anonymous streams of the latency phase",
  };

  return { lat, overhead, tput, roundTrips, store };
}

/** What `measurements` returns. */
export type Measurements = ReturnType<typeof measurements>;
