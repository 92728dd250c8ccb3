/**
 * @module Budgets on against budgets off, paired: rounds of one request each to the floor and
 * to the Upstash gateway with budgets on and off (anonymous and signed-in), in a fresh random
 * order each round, on the Workers runtime alone. Each round's difference on − off cancels the
 * machine's slow drift in load, which unpaired percentiles of a loaded machine do not.
 */
import { completed } from "../lib/client";
import { type BenchTarget, PLAN, SHORT, send, shuffle } from "./common";
import { paired } from "./paired";
import type { RuntimeSet } from "./runtime-set";

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
