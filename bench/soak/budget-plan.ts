/**
 * @module The budget soak's plan: tight budgets, who sends what (a skewed mix of anonymous and
 * signed-in callers, random caps, lengths and client aborts), and the bound on what a budget may
 * leave unused once it is exhausted.
 */
import type { StreamResult } from "../lib/client";

/** Tight budgets, in USD as the worker reads them; the load exhausts every one of them. */
export const BUDGETS = {
  BUDGET_USER_DAILY_USD: "0.03",
  BUDGET_ANON_DAILY_USD: "0.0009",
  BUDGET_ANON_HOURLY_USD: "0.01",
  BUDGET_GLOBAL_HOURLY_USD: "0.2",
};

/** The same budgets in µUSD, by the names the worker reports them under. */
export const LIMITS_MICRO = {
  user_daily: 30_000,
  anon_daily: 900,
  anon_hourly: 10_000,
  global_hourly: 200_000,
} as const;

export const ANON_IDENTITIES = 24;
export const SIGNED_IN_USERS = 16;
/** Client addresses, from the benchmarking range. */
export const ADDRESSES = Array.from({ length: 32 }, (_, i) => `198.19.1.${i + 1}`);

/** µUSD per million tokens = pico-USD per token, of the two models the soak uses. */
const PRICE = {
  "gpt-4o-mini": { input: 150_000, output: 600_000 },
  "gpt-4o": { input: 2_500_000, output: 10_000_000 },
} as const;
type SoakModel = keyof typeof PRICE;

/** Anonymous callers may use only gpt-4o-mini; signed-in ones pay for gpt-4o here. */
export const modelOf = (anonymous: boolean): SoakModel => (anonymous ? "gpt-4o-mini" : "gpt-4o");

/** The longest stream id a soak message names (`bs-<run>-upstash-D-<i>` is about 30). */
const MAX_ID_BYTES = 40;
/** The longest plain message the soak sends (see `plainMessage`), in UTF-8 bytes. */
const MAX_MESSAGE_BYTES =
  "Budget soak 123456 [[fake tokens=99 delay=9 bill=1 id=]]".length + MAX_ID_BYTES;
/** Tokens the worker adds around each message for its worst-case input bound. */
const CHAT_OVERHEAD_TOKENS = 8;

/**
 * The least a stream of `model` must be able to pay for (its worst-case prompt plus one output
 * token), µUSD: a budget exhausted by settled spend leaves less than this unused, per shard.
 */
export function minStreamMicroUsd(model: SoakModel): number {
  const p = PRICE[model];
  const input = Math.ceil(((MAX_MESSAGE_BYTES + CHAT_OVERHEAD_TOKENS) * p.input) / 1e6);
  return input + Math.ceil(p.output / 1e6);
}

/**
 * The most an exhausted budget may leave unused: less than the least a stream that still asks
 * it must pay for (gpt-4o's, the dearer model, once the anonymous budget has shut gpt-4o-mini
 * out), in each shard that holds a part of it (the Upstash store decides a budget whole).
 */
export function gapBound(budget: keyof typeof LIMITS_MICRO, shards: number): number {
  const dearest =
    budget === "anon_daily" || budget === "anon_hourly"
      ? minStreamMicroUsd("gpt-4o-mini")
      : minStreamMicroUsd("gpt-4o");
  const parts = budget === "anon_hourly" || budget === "global_hourly" ? shards : 1;
  return parts * dearest;
}

const rand = (n: number) => Math.floor(Math.random() * n);

/** Picks 0..n-1 with weights 1, 1/2, 1/3, ...: a few heavy callers and a long tail. */
export function zipf(n: number): number {
  let total = 0;
  for (let k = 1; k <= n; k++) total += 1 / k;
  let x = Math.random() * total;
  for (let k = 1; k <= n; k++) {
    x -= 1 / k;
    if (x <= 0) return k - 1;
  }
  return n - 1;
}

/** One caller of the soak: its bearer token, whether it is anonymous, and its index. */
export interface Caller {
  token: string;
  anonymous: boolean;
  index: number;
}

/** What a soak client does with its stream: read it to the end, or leave at some point. */
export type AbortPlan = "full" | "abort_tokens" | "abort_ms" | "abort_before_headers";

/**
 * The soak's abort mix (this run's and the main soak's) from a roll in [0, 1): 3 % leave before
 * the headers, 10 % after some tokens, 10 % some milliseconds after the headers, the rest stay.
 */
export function abortPlan(roll: number): AbortPlan {
  return roll < 0.03
    ? "abort_before_headers"
    : roll < 0.13
      ? "abort_tokens"
      : roll < 0.23
        ? "abort_ms"
        : "full";
}

/** What a request of the soak is: the plain mix, or one of the two kinds aimed at money without usage. */
export type StreamKind = "plain" | "adversarial" | "reasoning";

/** One request the soak sent, and what came of it. */
export interface BudgetSent {
  streamId: string;
  caller: Caller;
  kind: StreamKind;
  plan: AbortPlan;
  r: StreamResult;
}

/**
 * A plain message: 10 to 99 tokens, 1 to 5 ms apart; named `id` to the fake upstream, which
 * bills it with o200k (`bill=1`).
 */
export function plainMessage(i: number, id: string): { text: string; tokens: number } {
  if (id.length > MAX_ID_BYTES) throw new Error(`stream id ${id} is longer than ${MAX_ID_BYTES}`);
  const tokens = 10 + rand(90);
  return {
    text: `Budget soak ${i} [[fake tokens=${tokens} delay=${1 + rand(5)} bill=1 id=${id}]]`,
    tokens,
  };
}

/** The budget a refusal names (`... (budget global_hourly)`), or null for any other answer. */
export function refusedBy(r: StreamResult): string | null {
  if (r.errorCode !== "budget_exceeded" && r.errorCode !== "budget_exhausted") return null;
  return /\(budget ([a-z_]+)\)/.exec(r.errorDetail ?? "")?.[1] ?? "unnamed";
}

/** True for a budget refusal whose Retry-After runs to the window's end: settled spend fills it. */
export function settledOut(r: StreamResult): boolean {
  return refusedBy(r) !== null && Number(r.headers["retry-after"] ?? 0) > 60;
}
