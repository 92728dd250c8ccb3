/**
 * @module Budgets on against budgets off, paired: rounds of one request each to the floor and
 * to the Upstash gateway with budgets on and off (anonymous and signed-in), in a fresh random
 * order each round, on the Workers runtime alone. Each round's difference on − off cancels the
 * machine's slow drift in load, which unpaired percentiles of a loaded machine do not.
 */
import { completed } from "../lib/client";
import { round } from "../lib/stats";
import { type BenchTarget, PLAN, SHORT, send, shuffle } from "./common";
import type { RuntimeSet } from "./runtime-set";

/** The 25th, 50th and 75th percentiles of `xs` (nearest rank), with their count. */
function quartiles(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) =>
    s.length === 0 ? null : round(s[Math.min(s.length - 1, Math.floor(q * s.length))] as number, 2);
  return { n: s.length, p25: at(0.25), p50: at(0.5), p75: at(0.75) };
}

/** Per-round differences a − b, where both streams of the round completed. */
function paired(a: number[], b: number[]) {
  const out: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    if (Number.isFinite(x) && Number.isFinite(y)) out.push(x - y);
  }
  return quartiles(out);
}

/** Runs the paired rounds on `set`. */
export async function budgetsAbPhase(set: RuntimeSet) {
  const targets: BenchTarget[] = [set.floor, set.gwUp, set.gwUpOff, set.gwUser, set.gwUserOff];
  const ttft = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  const deadline = Date.now() + PLAN.abMaxMs;
  let rounds = 0;
  for (; rounds < PLAN.abRounds && Date.now() < deadline; rounds++) {
    for (const t of shuffle(targets)) {
      const r = await send(t, SHORT);
      ttft.get(t.name)?.push(completed(r) ? (r.firstTokenMs as number) : Number.NaN);
    }
  }
  const of = (t: BenchTarget) => ttft.get(t.name) ?? [];
  return {
    runtime: set.title,
    rounds,
    /** Per-round time to first token over the floor's of the same round, ms. */
    over_floor: {
      anonymous_budgets_on: paired(of(set.gwUp), of(set.floor)),
      anonymous_budgets_off: paired(of(set.gwUpOff), of(set.floor)),
      signed_in_budgets_on: paired(of(set.gwUser), of(set.floor)),
      signed_in_budgets_off: paired(of(set.gwUserOff), of(set.floor)),
    },
    /** Per-round time to first token with budgets on minus off, ms. */
    on_minus_off: {
      anonymous: paired(of(set.gwUp), of(set.gwUpOff)),
      signed_in: paired(of(set.gwUser), of(set.gwUserOff)),
    },
  };
}

/** What the paired phase returns. */
export type BudgetsAb = Awaited<ReturnType<typeof budgetsAbPhase>>;
