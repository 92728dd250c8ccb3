/** @module The memory and admissions sections of bench/results/latest.md. */
import { fmt, table } from "../lib/stats";
import type { AdmissionsRow } from "./admissions";
import type { BudgetsAb } from "./budgets-ab";
import { PLAN } from "./common";
import type { Results } from "./markdown";
import type { RuntimeSet } from "./runtime-set";

/** The memory section (long stream, many open streams, the wrangler dev relay). */
export function memoryMarkdown(r: Results, memorySet: RuntimeSet | null): string[] {
  const out: string[] = [];
  const push = (...lines: string[]) => out.push(...lines);
  const ls = r.memory.long_stream;
  const cc = r.memory.concurrent;
  const memSet = memorySet;
  if (memSet && Object.keys(ls).length > 0) {
    push("", `## Memory, on the ${r.memory.runtime} (MiB)`, "");
    push(
      "Live heap: the Worker's JavaScript heap after a full collection, read through the V8 inspector. " +
        "Kept per 1k tokens: what a heap census (objects by kind) late in the stream holds more of than one early in it, " +
        "compiled code aside. RSS: the workerd process that runs the Worker. " +
        `One ${PLAN.longStreamTokens}-token stream (a token about every millisecond) through each Worker at once; ` +
        `then ${PLAN.concurrentStreams} streams (15 tokens, 200 ms apart) opened within one second on each Worker in turn.`,
      "",
    );
    push(
      table(
        [
          "Worker",
          "10k tokens: live heap before → after",
          "kept per 1k tokens (census, KiB)",
          "heap-size slope (KiB per 1k tokens)",
          "RSS first token → last → settled",
          `${PLAN.concurrentStreams} open: live heap before → open → after`,
          "heap per open stream (KiB)",
          "RSS before → peak → after",
          "completed",
        ],
        [memSet.floor, memSet.gwUp, memSet.gwDo].map((t) => {
          const x = ls[t.name];
          const y = cc[t.name];
          return [
            t.role ?? t.name,
            x ? `${fmt(x.heap_mib.before, 2)} → ${fmt(x.heap_mib.after, 2)}` : "–",
            fmt(x?.heap_mib.census_growth?.kib_per_1k_tokens, 1),
            fmt(x?.heap_mib.slope_kib_per_1k_tokens, 1),
            x
              ? `${fmt(x.rss_mib.first_token, 1)} → ${fmt(x.rss_mib.last_token, 1)} → ${fmt(x.rss_mib.after, 1)}`
              : "–",
            y
              ? `${fmt(y.heap_mib.before, 2)} → ${fmt(y.heap_mib.with_streams_open, 2)} (${y.heap_mib.open_at_that_moment} open) → ${fmt(y.heap_mib.after, 2)}`
              : "–",
            fmt(y?.heap_mib.per_open_stream_kib, 1),
            y
              ? `${fmt(y.rss_mib.before, 1)} → ${fmt(y.rss_mib.peak, 1)} → ${fmt(y.rss_mib.after, 1)}`
              : "–",
            `${x?.completed ? "10k ok" : "10k **failed**"}; ${y ? `${y.completed}/${y.streams}` : "–"}`,
          ];
        }),
      ),
    );
  }
  const pr = r.memory.wrangler_dev_relay_probe;
  if (pr) {
    push(
      "",
      `Why not under \`wrangler dev\`: one 10,000-token stream at full speed through its floor: ${pr.stream} in ${fmt(pr.duration_ms, 0)} ms; ` +
        `wrangler's proxy workerd went from ${fmt(pr.proxy_workerd_rss_before_mib, 0)} to ${fmt(pr.proxy_workerd_rss_after_mib, 0)} MiB; /healthz afterwards: ${pr.healthz_after}.`,
    );
  }
  return out;
}

/** The Durable Object store's admissions per second, budgets off, own only, all on. */
export function admissionsMarkdown(rows: AdmissionsRow[] | null): string[] {
  if (!rows) return [];
  type Cell = {
    admissions_per_s: number | null;
    headers_p50_ms: number | null;
    headers_p95_ms: number | null;
    cpu_ms_per_admission: number | null;
    errors: Record<string, number>;
  };
  const cs = PLAN.admissionConcurrencies;
  return [
    "",
    "## Admissions per second, Durable Object store (Workers runtime alone)",
    "",
    `Closed loops of one-token streams from ${PLAN.admissionIdentities} anonymous identities, each from its own address; ` +
      "every admitted stream is settled by its ledger write. Locally every object runs in the one workerd process, so this " +
      "shows what the shared budgets' extra object calls cost per admission, not how shards spread over machines.",
    "",
    table(
      [
        "budgets",
        ...cs.map((c) => `c=${c}: admissions/s`),
        ...cs.map((c) => `c=${c}: headers p50 / p95 (ms)`),
        `CPU ms per admission (c=${cs.join(", ")})`,
        "errors",
      ],
      rows.map((row) => {
        const cell = (c: number) => row[`c${c}`] as Cell | undefined;
        return [
          row.title as string,
          ...cs.map((c) => fmt(cell(c)?.admissions_per_s, 0)),
          ...cs.map(
            (c) => `${fmt(cell(c)?.headers_p50_ms, 1)} / ${fmt(cell(c)?.headers_p95_ms, 1)}`,
          ),
          cs.map((c) => fmt(cell(c)?.cpu_ms_per_admission, 2)).join(", "),
          String(
            cs.reduce(
              (t, c) => t + Object.values(cell(c)?.errors ?? {}).reduce((a, b) => a + b, 0),
              0,
            ),
          ),
        ];
      }),
    ),
  ];
}

/** The paired comparison of budgets on and off. */
export function abMarkdown(ab: BudgetsAb): string[] {
  type Q = { n: number; p25: number | null; p50: number | null; p75: number | null };
  const q = (x: Q) => `${fmt(x.p50, 2)} (${fmt(x.p25, 2)} to ${fmt(x.p75, 2)}, n ${x.n})`;
  const f = ab.over_floor;
  return [
    "",
    `## Budgets on against off, paired rounds (${ab.runtime}, ${ab.rounds} rounds)`,
    "",
    "Each round sends one request to the floor and to the Upstash gateway with the default budgets and with all four " +
      "BUDGET_* at 0, anonymous and signed-in, in a random order; each figure is the median of the per-round differences " +
      "(25th to 75th percentile in brackets), so the machine's drift in load cancels out.",
    "",
    table(
      ["caller", "over the floor, budgets on", "over the floor, budgets off", "on − off"],
      [
        [
          "anonymous",
          q(f.anonymous_budgets_on),
          q(f.anonymous_budgets_off),
          q(ab.on_minus_off.anonymous),
        ],
        [
          "signed-in",
          q(f.signed_in_budgets_on),
          q(f.signed_in_budgets_off),
          q(ab.on_minus_off.signed_in),
        ],
      ],
    ),
  ];
}
