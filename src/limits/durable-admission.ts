/**
 * @module The steps of a Durable Object's admission that touch no storage: which counters it
 * reads (in one statement), the window's and the quota's decisions from them, and the rows it
 * writes back (in one statement) when it counts. The object itself runs them in order.
 */
import type { WindowSpec } from "../config";
import type { HoldPrice } from "./budget";
import type { BudgetEntry } from "./durable-budgets";
import type { CounterRow } from "./durable-counters";
import { decide, peek, windowKeys } from "./sliding-window";
import type { QuotaResult, WindowResult } from "./store";

/** Counters of the anonymous total quota live this long after their last use. */
export const TOTAL_QUOTA_TTL_MS = 400 * 86_400_000;
/** An admission's mark (what it counted) lives this long: longer than any call can be late. */
export const ADMISSION_MARK_TTL_MS = 60_000;
/** What an admission's mark says it counted: the window, the window and a quota unit, nothing. */
export const MARK = { window: 1, quota: 2, cancelled: 3 } as const;
/** The key of the anonymous total quota's counter in the user's object. */
export const TOTAL_QUOTA_KEY = "quota:total";

/** A window bucket's counter outlives the bucket and the window after it. */
export const bucketExpiry = (spec: WindowSpec, now: number) => now + spec.windowMs * 2 + 1000;

/** The quotas an admission spends from (the user's object of an anonymous caller). */
export interface QuotaSpec {
  hourly: WindowSpec;
  total: number;
}

/** A hold against the user's own budgets, decided in the user's object. */
export interface OwnHold {
  entries: BudgetEntry[];
  price: HoldPrice;
  expiresAt: number;
}

/**
 * Where each counter sits in an admission's keys and in what its read returns, by name: the
 * admission's mark, the window's current and previous bucket, then (with a quota) the hourly
 * quota's two buckets and the total quota.
 */
export const SLOT = {
  mark: 0,
  current: 1,
  previous: 2,
  hourlyCurrent: 3,
  hourlyPrevious: 4,
  total: 5,
} as const;

/** The keys of admission `id` in the named window at `now`, in SLOT order; the quota's with `hourly`. */
export function admissionKeys(
  id: string,
  name: string,
  spec: WindowSpec,
  hourly: WindowSpec | null,
  now: number,
): string[] {
  const [current, previous] = windowKeys(name, spec, now);
  const mark = `admission:${id}`;
  if (!hourly) return [mark, current, previous];
  const [hourlyCurrent, hourlyPrevious] = windowKeys("quota:hourly", hourly, now);
  return [mark, current, previous, hourlyCurrent, hourlyPrevious, TOTAL_QUOTA_KEY];
}

/** The window's decision from the counts read (SLOT order): the result and its bucket's new count. */
export function checkWindow(counts: readonly number[], spec: WindowSpec, now: number) {
  return decide(counts[SLOT.current] ?? 0, counts[SLOT.previous] ?? 0, now, spec);
}

/**
 * Decides one unit of the hourly and the total quota, both or neither, from the counts read
 * (SLOT order); writes nothing.
 */
export function checkQuota(quota: QuotaSpec, counts: readonly number[], now: number): QuotaResult {
  const current = counts[SLOT.hourlyCurrent] ?? 0;
  const previous = counts[SLOT.hourlyPrevious] ?? 0;
  const used = counts[SLOT.total] ?? 0;
  const cap = quota.total;
  const total = { limit: cap, remaining: Math.max(0, cap - used), success: used < cap };
  if (!total.success) {
    const hourly = peek(current, previous, now, quota.hourly);
    return { success: false, exhausted: "total", hourly, total };
  }
  const hourly: WindowResult = decide(current, previous, now, quota.hourly).result;
  if (!hourly.success) return { success: false, exhausted: "hourly", hourly, total };
  return {
    success: true,
    exhausted: null,
    hourly,
    total: { limit: cap, remaining: cap - used - 1, success: true },
  };
}

/**
 * Everything an admission counts, as rows for one write: the window's hit (`current`, its
 * bucket's new count), with `quota` one unit of each quota, and the mark that says which.
 */
export function countedRows(
  keys: readonly string[],
  counts: readonly number[],
  spec: WindowSpec,
  current: number,
  quota: QuotaSpec | null,
  now: number,
): CounterRow[] {
  const window: CounterRow = [keys[SLOT.current] as string, current, bucketExpiry(spec, now)];
  const mark = keys[SLOT.mark] as string;
  const markExpiry = now + ADMISSION_MARK_TTL_MS;
  if (!quota) return [window, [mark, MARK.window, markExpiry]];
  return [
    window,
    [
      keys[SLOT.hourlyCurrent] as string,
      (counts[SLOT.hourlyCurrent] ?? 0) + 1,
      bucketExpiry(quota.hourly, now),
    ],
    [TOTAL_QUOTA_KEY, (counts[SLOT.total] ?? 0) + 1, now + TOTAL_QUOTA_TTL_MS],
    [mark, MARK.quota, markExpiry],
  ];
}
