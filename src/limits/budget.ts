/**
 * @module Spend budgets: which budgets a caller's stream holds against, their windows, and the
 * one piece of arithmetic that turns a cost cap and what each budget has left into a hold and
 * a `max_tokens`. The Upstash admission script mirrors `decideHold` line for line; the contract
 * tests run both stores on the same cases.
 */

/** The four budgets. The first two are a caller's own (429), the last two are shared (503). */
export const BUDGET_NAMES = ["user_daily", "anon_daily", "anon_hourly", "global_hourly"] as const;
export type BudgetName = (typeof BUDGET_NAMES)[number];

/** One configured budget: its ceiling in µUSD and its window. */
export interface BudgetSpec {
  name: BudgetName;
  limitMicroUsd: number;
  window: "day" | "hour";
}

/** The four budgets as configured; a limit of 0 turns that budget off. */
export interface BudgetSpecs {
  userDaily: number;
  anonDaily: number;
  anonHourly: number;
  globalHourly: number;
}

/** True for the shared budgets (everyone's, all anonymous callers'), which callers never see. */
export const isShared = (name: BudgetName) => name === "anon_hourly" || name === "global_hourly";

/**
 * The budgets a stream holds against, own first, then shared (the contract's order of
 * refusal). A caller is anonymous for an anonymous session or a Supabase `is_anonymous` user.
 */
export function applicableBudgets(specs: BudgetSpecs, anonymous: boolean): BudgetSpec[] {
  const all: BudgetSpec[] = anonymous
    ? [
        { name: "anon_daily", limitMicroUsd: specs.anonDaily, window: "day" },
        { name: "anon_hourly", limitMicroUsd: specs.anonHourly, window: "hour" },
      ]
    : [{ name: "user_daily", limitMicroUsd: specs.userDaily, window: "day" }];
  all.push({ name: "global_hourly", limitMicroUsd: specs.globalHourly, window: "hour" });
  return all.filter((b) => b.limitMicroUsd > 0);
}

/** The shared budgets that are on (for operators' metrics). */
export function sharedBudgets(specs: BudgetSpecs): BudgetSpec[] {
  return applicableBudgets(specs, true).filter((b) => isShared(b.name));
}

const WINDOW_MS = { day: 86_400_000, hour: 3_600_000 } as const;

/** The id of the window `at` falls in (`2026-12-01` or `2026-12-01T10`) and when it ends. */
export function budgetWindow(spec: BudgetSpec, at: number): { id: string; endsAt: number } {
  const ms = WINDOW_MS[spec.window];
  const start = Math.floor(at / ms) * ms;
  const iso = new Date(start).toISOString();
  return { id: spec.window === "day" ? iso.slice(0, 10) : iso.slice(0, 13), endsAt: start + ms };
}

/** What a stream may cost, from its model and prompt: everything a hold is computed from. */
export interface HoldPrice {
  /** The stream's own cap, µUSD. */
  capMicroUsd: number;
  /** The prompt's worst-case input cost, µUSD (rounded up). */
  inputMicroUsd: number;
  /** One output token's price in pico-USD (an integer). */
  outputPicoUsd: number;
  /** The most output tokens any stream asks for. */
  maxTokensCeiling: number;
}

/** A budget's state at the moment of a decision, in µUSD. */
export interface BudgetState {
  limit: number;
  spent: number;
  held: number;
}

/** The outcome of holding against a list of budgets. */
export type HoldDecision =
  | { ok: true; maxTokens: number; holdMicroUsd: number }
  | {
      ok: false;
      /** Index of the refusing budget in the list. */
      refusedBy: number;
      /** True when settled spend alone leaves too little: the budget is back only when its window ends. */
      settledOut: boolean;
    };

/** Output tokens `microUsd` pays for after the input. Integer arithmetic below 2^53. */
const tokensFor = (microUsd: number, p: HoldPrice) =>
  Math.floor(((microUsd - p.inputMicroUsd) * 1_000_000) / p.outputPicoUsd);

/**
 * The hold: the stream's effective cap is the least of its own cap and what each budget has
 * left; `max_tokens` is what that pays for after the worst-case input, and the hold is the
 * worst-case cost of that many tokens, never more than the effective cap. A budget that cannot
 * pay for one output token refuses (the first such, in order).
 */
export function decideHold(p: HoldPrice, budgets: BudgetState[]): HoldDecision {
  let cap = p.capMicroUsd;
  for (let i = 0; i < budgets.length; i++) {
    const b = budgets[i] as BudgetState;
    const left = b.limit - b.spent - b.held;
    if (tokensFor(left, p) < 1) {
      return { ok: false, refusedBy: i, settledOut: tokensFor(b.limit - b.spent, p) < 1 };
    }
    if (left < cap) cap = left;
  }
  const maxTokens = Math.min(p.maxTokensCeiling, tokensFor(cap, p));
  return {
    ok: true,
    maxTokens,
    holdMicroUsd: p.inputMicroUsd + Math.ceil((maxTokens * p.outputPicoUsd) / 1_000_000),
  };
}

/**
 * What a stream's settlement needs to find its hold again: the admission's id (the hold's
 * name in every budget), when it was admitted (its budget windows), the amount held, and, for
 * the Durable Object store, the shard that holds its shared budgets.
 */
export interface HoldTicket {
  id: string;
  at: number;
  microUsd: number;
  /** Whose budgets: an anonymous caller's or a signed-in user's. */
  anonymous: boolean;
  shard: number;
}
