/**
 * @module The issue's targets, judged from the figures: first token over the floor (budgets on
 * and off), store round trips before the first byte, memory over a long stream, the soak's
 * ledger, and the Durable Object store's admissions with the shared budgets on.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { COMMITTED_RESULTS } from "../lib/results-dir";
import { ROOT } from "../lib/stack";
import { fmt } from "../lib/stats";
import type { AdmissionsRow } from "./admissions";
import type { BudgetsAb } from "./budgets-ab";
import { OUT_DIR, PLAN } from "./common";
import type { concurrentPhase, longStreamPhase } from "./memory";
import type { Measurements } from "./results";
import type { RuntimeSet } from "./runtime-set";

/** One target as the results file and the markdown show it. */
export interface TargetRow {
  target: string;
  goal: string;
  measured: string;
  met: boolean | null;
}

/** How much worse the first token with budgets on may be than with them off and still count as "no worse": noise. */
const NO_WORSE_MS = 0.5;

/** Judges the targets. */
export function judgeTargets(o: {
  m: Measurements;
  sets: RuntimeSet[];
  primary: RuntimeSet;
  memorySet: RuntimeSet | null;
  longStream: Record<string, Awaited<ReturnType<typeof longStreamPhase>>>;
  concurrent: Record<string, Awaited<ReturnType<typeof concurrentPhase>>>;
  admissions: AdmissionsRow[] | null;
  budgetsAb: BudgetsAb;
}): TargetRow[] {
  const { sets, primary, memorySet, longStream } = o;
  const { overhead, roundTrips } = o.m;
  const anon = { length: roundTrips.anonymous.samples };
  // This run's directory first (a local soak), else the committed soak.
  const soakFile = [OUT_DIR, join(ROOT, COMMITTED_RESULTS)]
    .map((d) => join(d, "soak-latest.json"))
    .find((f) => existsSync(f)) as string;
  const soak = existsSync(soakFile)
    ? (JSON.parse(readFileSync(soakFile, "utf8")) as {
        generated_at: string;
        runs: {
          store: string;
          streams_started: number;
          ledger: { lost: number; doubled: number };
        }[];
        budget_runs?: {
          store: string;
          ledger: { lost: number; doubled: number; records: number };
          shared: Record<string, { limit_micro_usd: number; spent_micro_usd: number | null }>;
          checks: Record<string, boolean>;
        }[];
      })
    : null;
  const overFloor = (name: string) => overhead[name]?.ttft_over_floor_p50 ?? null;
  const maxBefore = Math.max(
    roundTrips.anonymous.before_first_byte.max ?? Number.POSITIVE_INFINITY,
    roundTrips.signed_in.before_first_byte.max ?? Number.POSITIVE_INFINITY,
  );
  /**
   * Flat: the live heap keeps no objects for the tokens of the stream (what a census late in the
   * stream holds more of than one early in it, compiled code aside, is under 8 KiB per 1,000
   * tokens, i.e. under 1 byte per token) and is back within 0.5 MiB of where it started once the
   * stream settled. The census, not the slope of the heap size: one heap-size reading moves by a
   * few hundred KiB either way whatever the stream keeps.
   */
  const flat = (name: string): boolean => {
    const x = longStream[name];
    return (
      x?.completed === true &&
      x.heap_mib.growth !== null &&
      Math.abs(x.heap_mib.growth) <= 0.5 &&
      (x.heap_mib.census_growth?.kib_per_1k_tokens ?? Number.POSITIVE_INFINITY) < 8
    );
  };
  const ab = o.budgetsAb.on_minus_off;
  const ownWork = (name: string) => overhead[name]?.ttft_over_floor_with_store_trip_p50 ?? null;
  // Judged as production runs: the Upstash store (the Durable Object store is the fallback that
  // lets `wrangler dev` run with nothing installed) on the Workers runtime alone, without a dev
  // proxy or the devtools relay (which charges every subrequest, so every store round trip).
  const underTwo = (s: RuntimeSet) =>
    [s.gwUp, s.gwUser].every((t) => (overFloor(t.name) ?? Number.POSITIVE_INFINITY) <= 2);
  const judgedOn = sets.find((s) => s.runtime === "miniflare") ?? primary;
  return [
    {
      target: "added to the first token over the floor, p50",
      goal: "≤ 2 ms (one store round trip plus at most about 1 ms of own work)",
      measured: `${sets
        .map(
          (s) =>
            `${s.title}: Upstash ${fmt(overFloor(s.gwUp.name), 2)} ms (signed-in ${fmt(overFloor(s.gwUser.name), 2)}; budgets off ${fmt(overFloor(s.gwUpOff.name), 2)}, signed-in ${fmt(overFloor(s.gwUserOff.name), 2)}), Durable Object ${fmt(overFloor(s.gwDo.name), 2)} ms; one store round trip alone ${fmt(overFloor(s.floorTrip.name), 2)} ms (one Durable Object round trip ${fmt(overFloor(s.floorDoTrip.name), 2)} ms), so own work ${fmt(ownWork(s.gwUp.name), 2)} ms (signed-in ${fmt(ownWork(s.gwUser.name), 2)}, Durable Object ${fmt(ownWork(s.gwDo.name), 2)})${underTwo(s) ? "" : " — Upstash over 2 ms"}`,
        )
        .join(
          "; ",
        )}. Judged on the Upstash store (production's) on the ${judgedOn.title.toLowerCase()}.`,
      met: underTwo(judgedOn),
    },
    {
      target: "first token with budgets on, against budgets off",
      goal: `no worse: the median of paired per-round differences on − off ≤ ${NO_WORSE_MS} ms, anonymous and signed-in (${o.budgetsAb.runtime.toLowerCase()})`,
      measured:
        `paired, ${o.budgetsAb.rounds} rounds: anonymous ${fmt(ab.anonymous.p50, 2)} ms (25th to 75th percentile ${fmt(ab.anonymous.p25, 2)} to ${fmt(ab.anonymous.p75, 2)}), signed-in ${fmt(ab.signed_in.p50, 2)} ms (${fmt(ab.signed_in.p25, 2)} to ${fmt(ab.signed_in.p75, 2)}). Unpaired p50 over the floor, on vs off: ` +
        sets
          .map(
            (s) =>
              `${s.title}: anonymous ${fmt(overFloor(s.gwUp.name), 2)} vs ${fmt(overFloor(s.gwUpOff.name), 2)}, signed-in ${fmt(overFloor(s.gwUser.name), 2)} vs ${fmt(overFloor(s.gwUserOff.name), 2)}`,
          )
          .join("; "),
      met:
        (ab.anonymous.p50 ?? Number.POSITIVE_INFINITY) <= NO_WORSE_MS &&
        (ab.signed_in.p50 ?? Number.POSITIVE_INFINITY) <= NO_WORSE_MS,
    },
    {
      target: "store round trips before the first byte",
      goal: "≤ 2",
      measured: `budgets on: anonymous ${roundTrips.anonymous.before_first_byte.max}, signed-in ${roundTrips.signed_in.before_first_byte.max}; budgets off: anonymous ${roundTrips.anonymous_budgets_off.before_first_byte.max}, signed-in ${roundTrips.signed_in_budgets_off.before_first_byte.max} (max of ${anon.length} streams each)`,
      met: maxBefore <= 2,
    },
    {
      target: `memory over a ${PLAN.longStreamTokens}-token stream`,
      goal: "flat: live objects kept during the stream < 8 KiB per 1k tokens (heap census, compiled code aside), back within 0.5 MiB after the stream",
      measured:
        memorySet === null
          ? "skipped"
          : `${[memorySet.gwUp, memorySet.gwDo]
              .map((t) => {
                const x = longStream[t.name];
                return `${t.role}: keeps ${fmt(x?.heap_mib.census_growth?.kib_per_1k_tokens, 1)} KiB per 1k tokens (census; heap-size slope ${fmt(x?.heap_mib.slope_kib_per_1k_tokens, 0)}), live heap ${fmt(x?.heap_mib.before, 2)} → ${fmt(x?.heap_mib.after, 2)} MiB after the stream`;
              })
              .join(
                "; ",
              )} (the bare floor keeps ${fmt(longStream[memorySet.floor.name]?.heap_mib.census_growth?.kib_per_1k_tokens, 0)} KiB per 1k tokens)`,
      met: memorySet === null ? null : flat(memorySet.gwUp.name) && flat(memorySet.gwDo.name),
    },
    {
      target: "lost ledger records in the soak",
      goal: "0",
      measured: soak
        ? `${soak.runs
            .map(
              (r) =>
                `${r.store}: ${r.ledger.lost} lost, ${r.ledger.doubled} doubled of ${r.streams_started} streams`,
            )
            .join("; ")} (npm run soak, ${soak.generated_at.slice(0, 16).replace("T", " ")} UTC)`
        : "not run yet: npm run soak",
      met: soak ? soak.runs.every((r) => r.ledger.lost === 0 && r.ledger.doubled === 0) : null,
    },
    {
      target: "spend budgets in the soak",
      goal: "spend ≤ every budget, 0 lost or doubled settlements",
      measured: soak?.budget_runs?.length
        ? `${soak.budget_runs
            .map(
              (r) =>
                `${r.store}: ${Object.entries(r.shared)
                  .map(([n, b]) => `${n} ${b.spent_micro_usd} of ${b.limit_micro_usd} µUSD`)
                  .join(
                    ", ",
                  )}; ${r.ledger.lost} lost, ${r.ledger.doubled} doubled of ${r.ledger.records} records`,
            )
            .join("; ")}`
        : "not run yet: npm run soak",
      met: soak?.budget_runs?.length
        ? soak.budget_runs.every((r) => Object.values(r.checks).every(Boolean))
        : null,
    },
    {
      target: "admissions per second, Durable Object store, shared budgets on",
      goal: "measured next to budgets off (no figure set by the issue)",
      measured: o.admissions
        ? o.admissions
            .map((row) => {
              const c = (k: string) =>
                (row[k] as { admissions_per_s: number | null } | undefined)?.admissions_per_s;
              return `${row.config}: ${PLAN.admissionConcurrencies.map((k) => `c${k} ${fmt(c(`c${k}`), 0)}/s`).join(", ")}`;
            })
            .join("; ")
        : "skipped",
      met: null,
    },
  ];
}
