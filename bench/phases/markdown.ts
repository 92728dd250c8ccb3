/** @module bench/results/latest.md from the results: the tables, then the targets. */
import { fmt, table } from "../lib/stats";
import type { AdmissionsRow } from "./admissions";
import type { BudgetsAb } from "./budgets-ab";
import { type BenchTarget, errorCount, type PLAN, type SummaryJson } from "./common";
import { abMarkdown, admissionsMarkdown, memoryMarkdown } from "./markdown-more";
import type { concurrentPhase, longStreamPhase, relayProbe } from "./memory";
import type { PeerStatus } from "./peer";
import { setTargets } from "./results";
import type { RoundTrips } from "./round-trips";
import type { RuntimeSet } from "./runtime-set";
import type { TargetRow } from "./targets";

export interface Results {
  generated_at: string;
  duration_s: number;
  quick: boolean;
  machine: Record<string, unknown>;
  plan: typeof PLAN;
  request: string;
  gateway_config: Record<string, unknown>;
  peer: PeerStatus;
  latency_rounds: number;
  latency: Record<
    string,
    { n: number; errors: Record<string, number>; ttft_ms: SummaryJson; full_ms: SummaryJson }
  >;
  overhead_ms: Record<string, Record<string, number | null>>;
  throughput: Record<string, Record<string, unknown>>;
  store: {
    round_trips: {
      first_stream_after_start: RoundTrips;
      anonymous: Record<string, unknown>;
      signed_in: Record<string, unknown>;
      anonymous_budgets_off: Record<string, unknown>;
      signed_in_budgets_off: Record<string, unknown>;
    };
    node_to_upstash_pipeline_ms: SummaryJson;
    worker_rate_limit_call_ms: Record<string, SummaryJson>;
    worker_upstream_headers_ms: Record<string, SummaryJson>;
  };
  memory: {
    runtime: string | null;
    long_stream: Record<string, Awaited<ReturnType<typeof longStreamPhase>>>;
    concurrent: Record<string, Awaited<ReturnType<typeof concurrentPhase>>>;
    wrangler_dev_relay_probe: Awaited<ReturnType<typeof relayProbe>> | null;
  };
  /** Budgets on against off, paired rounds on the Workers runtime alone. */
  budgets_on_against_off: BudgetsAb;
  /** Admissions per second of the Durable Object store, budgets off / own only / all on. */
  admissions: AdmissionsRow[] | null;
  targets: TargetRow[];
}

export function markdown(
  r: Results,
  o: {
    latencyTargets: BenchTarget[];
    loadTargets: BenchTarget[];
    sets: RuntimeSet[];
    memorySet: RuntimeSet | null;
  },
): string {
  const m = r.machine;
  const out: string[] = [];
  const push = (...lines: string[]) => out.push(...lines);
  push(`# Bench results, ${r.generated_at.slice(0, 16).replace("T", " ")} UTC`, "");
  push(
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memory_gib} GiB RAM, ${m.os}; Node ${m.node}, wrangler ${m.wrangler} ` +
      `(miniflare ${m.miniflare}), redis ${m.redis}. Load average ${(m.loadavg_at_start as number[]).join("/")} at the start, ` +
      `${(m.loadavg_at_end as number[]).join("/")} at the end; the run took ${r.duration_s} s${r.quick ? " (--quick)" : ""}. ` +
      "Loopback only. Every Worker runs three times: under `wrangler dev` as a developer runs it; on the same dev server " +
      "with the devtools inspector off (`unstable_startWorker`, `inspector: false`), because under `wrangler dev` every " +
      "network event of a Worker (each store round trip, each upstream chunk) is relayed to the wrangler process, which " +
      "charges each subrequest a few milliseconds that production does not; and as `wrangler deploy` bundles it on the " +
      "Workers runtime alone (workerd through Miniflare, no dev proxy), the closest to production here. The floor also " +
      "runs with one store round trip before its upstream call (a PING to the same local Upstash server): the least any " +
      "gateway that enforces limits pays, so what the gateway adds over it is its own work. " +
      `Every Worker's local state (Durable Objects, D1, queues) is in ${m.state_dir ?? "the temp dir"}, as Redis keeps nothing on disk: ` +
      "on this VM's disk each storage commit's fsync, not the Worker, would dominate the Durable Object figures.",
    "",
  );
  push(
    `## Time to first token and full stream (ms): one request at a time, ${r.latency_rounds} rounds, targets in random order each round`,
    "",
  );
  push(
    table(
      ["target", "TTFT p50", "p95", "p99", "full p50", "p95", "p99", "errors"],
      o.latencyTargets.map((t) => {
        const l = r.latency[t.name];
        return [
          t.label,
          fmt(l?.ttft_ms.p50, 2),
          fmt(l?.ttft_ms.p95, 2),
          fmt(l?.ttft_ms.p99, 2),
          fmt(l?.full_ms.p50, 2),
          fmt(l?.full_ms.p95, 2),
          fmt(l?.full_ms.p99, 2),
          `${l ? errorCount(l.errors) : "–"}/${l?.n ?? 0}`,
        ];
      }),
    ),
  );
  if (r.peer.status !== "running") {
    push(
      "",
      `Peer gateway ${r.peer.name}: **${r.peer.status}**${r.peer.detail ? ` (${r.peer.detail})` : ""}. It is not a dependency of this project; installed by hand it is benched as one more target.`,
    );
  }
  push(
    "",
    "## What the project costs: time to first token over the floor and over direct (ms)",
    "",
  );
  push(
    table(
      [
        "runtime",
        "Worker",
        "over the floor p50",
        "p95",
        "own work: over the floor plus one store round trip (Durable Object store: one DO round trip), p50",
        "over direct p50",
        "p95",
      ],
      o.sets.flatMap((s) =>
        setTargets(s).map((t) => {
          const x = r.overhead_ms[t.name];
          return [
            s.title,
            t.role ?? t.name,
            fmt(x?.ttft_over_floor_p50, 2),
            fmt(x?.ttft_over_floor_p95, 2),
            fmt(x?.ttft_over_floor_with_store_trip_p50, 2),
            fmt(x?.ttft_over_direct_p50, 2),
            fmt(x?.ttft_over_direct_p95, 2),
          ];
        }),
      ),
    ),
  );
  push(...abMarkdown(r.budgets_on_against_off));
  push("", "## Short streams (20 tokens) per second, closed loop, errors counted", "");
  push(
    table(
      [
        "target",
        "c=1",
        "c=16",
        "c=64",
        "errors",
        "full p50 / p95 at c=64 (ms)",
        "CPU ms per stream c=16 / c=64",
      ],
      o.loadTargets.map((t) => {
        const row = r.throughput[t.name] as Record<
          string,
          {
            streams_per_s: number;
            errors: number;
            full_p50_ms: number | null;
            full_p95_ms: number | null;
            cpu_ms_per_stream: number | null;
          }
        >;
        const errs = ["c1", "c16", "c64"].reduce((a, c) => a + (row[c]?.errors ?? 0), 0);
        return [
          t.label,
          fmt(row.c1?.streams_per_s, 0),
          fmt(row.c16?.streams_per_s, 0),
          fmt(row.c64?.streams_per_s, 0),
          String(errs),
          `${fmt(row.c64?.full_p50_ms, 0)} / ${fmt(row.c64?.full_p95_ms, 0)}`,
          `${fmt(row.c16?.cpu_ms_per_stream, 2)} / ${fmt(row.c64?.cpu_ms_per_stream, 2)}`,
        ];
      }),
    ),
  );
  push(
    "",
    "## Store round trips per stream (Upstash store, counted at the local Upstash server)",
    "",
  );
  const rt = r.store.round_trips;
  type Span = { min: number | null; max: number | null };
  const span = (x: unknown, commands?: unknown): string => {
    const s = x as Span | undefined;
    const text = s ? (s.min === s.max ? `${s.min}` : `${s.min}–${s.max}`) : "–";
    return commands === undefined ? text : `${text} (${span(commands)} commands)`;
  };
  const f = rt.first_stream_after_start;
  type Trips = Record<string, unknown>;
  const row = (label: string, x: Trips) => [
    label,
    span(x.before_first_byte, x.commands_before_first_byte),
    span(x.before_first_token),
    span(x.right_after_the_stream),
    span(x.in_wait_until, x.commands_in_wait_until),
  ];
  push(
    table(
      [
        "caller",
        "requests before the first byte",
        "before the first token",
        "in waitUntil: right after the stream (ledger)",
        "in all, with the metrics flush",
      ],
      [
        row("anonymous (rate limits, quota, budgets)", rt.anonymous),
        row("signed-in (rate limits, budgets)", rt.signed_in),
        row("anonymous, budgets off", rt.anonymous_budgets_off),
        row("signed-in, budgets off", rt.signed_in_budgets_off),
        [
          "first stream after start, anonymous",
          `${f.beforeFirstByte} (${f.commandsBeforeFirstByte} commands)`,
          String(f.beforeFirstToken),
          String(f.atEnd),
          `${f.inWaitUntil} (${f.commandsInWaitUntil} commands)`,
        ],
      ],
    ),
  );
  const p = r.store.node_to_upstash_pipeline_ms;
  const w = r.store.worker_rate_limit_call_ms;
  push(
    "",
    `One store round trip on its own: Node → local Upstash server → redis-server (a /pipeline of two scripts) p50 ${fmt(p.p50, 2)} ms, p95 ${fmt(p.p95, 2)} ms. ` +
      `The gateway's rate-limit call as it logs it (store_ms, whole ms) p50 / p95: ${o.sets
        .flatMap((s) =>
          [s.gwUp, s.gwDo].map(
            (t) => `${s.title}, ${t.role}: ${fmt(w[t.name]?.p50, 1)} / ${fmt(w[t.name]?.p95, 1)}`,
          ),
        )
        .join("; ")}.`,
  );
  push(...memoryMarkdown(r, o.memorySet));
  push(...admissionsMarkdown(r.admissions));
  push("", "## Targets", "");
  push(
    table(
      ["target", "goal", "measured", "met"],
      r.targets.map((t) => [
        t.target,
        t.goal,
        t.measured,
        t.met === null ? "–" : t.met ? "yes" : "**no**",
      ]),
    ),
  );
  push("");
  return `${out.join("\n")}\n`;
}
