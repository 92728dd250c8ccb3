/**
 * @module The sliding-window arithmetic of `@upstash/ratelimit`, in TypeScript, so the Durable
 * Object store counts exactly like the Upstash one.
 *
 * Two fixed buckets (current and previous); the previous bucket counts in proportion to how
 * much of it still overlaps the window. In any interval of one window length at most
 * `2 × limit` hits pass in the worst case (a burst at the end of one bucket and another
 * at the start of the next), and at most `limit` per bucket.
 */
import type { WindowSpec } from "../config";
import type { WindowResult } from "./store";

/** The bucket a timestamp falls into. */
export function bucketOf(now: number, spec: WindowSpec): number {
  return Math.floor(now / spec.windowMs);
}

/** Unix ms when the bucket that `now` falls in ends: the `reset` of a window result. */
export function windowEnd(now: number, spec: WindowSpec): number {
  return (bucketOf(now, spec) + 1) * spec.windowMs;
}

/** The keys of the current and the previous bucket of window `id` at `now` (ratelimit's naming). */
export function windowKeys(id: string, spec: WindowSpec, now: number): [string, string] {
  const bucket = bucketOf(now, spec);
  return [`${id}:${bucket}`, `${id}:${bucket - 1}`];
}

/** Hits the previous bucket still counts for, as ratelimit computes it. */
export function weightedPrevious(previous: number, now: number, spec: WindowSpec): number {
  const inCurrent = (now % spec.windowMs) / spec.windowMs;
  return Math.floor((1 - inCurrent) * previous);
}

/**
 * Decides one hit of `rate` (negative to refund) given the two bucket counts. Returns the
 * result and the new count of the current bucket.
 */
export function decide(
  current: number,
  previous: number,
  now: number,
  spec: WindowSpec,
  rate = 1,
): { result: WindowResult; current: number } {
  const weighted = weightedPrevious(previous, now, spec);
  const reset = windowEnd(now, spec);
  if (rate > 0 && weighted + current >= spec.limit) {
    const retryAt = passesAt(current, previous, now, spec);
    return { result: { success: false, limit: spec.limit, remaining: 0, reset, retryAt }, current };
  }
  const next = current + rate;
  const remaining = Math.max(0, spec.limit - (next + weighted));
  return { result: { success: true, limit: spec.limit, remaining, reset }, current: next };
}

/** Reads a window without counting a hit. */
export function peek(
  current: number,
  previous: number,
  now: number,
  spec: WindowSpec,
): WindowResult {
  const used = current + weightedPrevious(previous, now, spec);
  return {
    success: used < spec.limit,
    limit: spec.limit,
    remaining: Math.max(0, spec.limit - used),
    reset: windowEnd(now, spec),
  };
}

/**
 * The earliest unix ms at which one more hit would pass a window holding `current` and
 * `previous` at `now`, by the same arithmetic as `decide`: within a bucket only the previous
 * bucket's weight falls (so "it passes" only turns true as time goes on, and a binary search
 * finds the first ms); at the bucket's end the current count becomes the previous one. `now`
 * itself when one would pass already.
 */
export function passesAt(current: number, previous: number, now: number, spec: WindowSpec): number {
  const fits = (cur: number, prev: number, t: number) =>
    cur + weightedPrevious(prev, t, spec) < spec.limit;
  /** The first ms in [from, to) at which `ok` holds, or `to`. */
  const first = (from: number, to: number, ok: (t: number) => boolean) => {
    let [lo, hi] = [from, to];
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      if (ok(mid)) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
  const end = windowEnd(now, spec);
  if (current < spec.limit) {
    const t = first(now, end, (x) => fits(current, previous, x));
    if (t < end) return t;
  }
  return first(end, end + spec.windowMs, (x) => fits(0, current, x));
}

/** Of two windows' answers to one request, the one that binds: a refusal, else fewer left. */
export function tighter(a: WindowResult, b: WindowResult): WindowResult {
  if (!a.success || !b.success) return a.success ? b : a;
  return b.remaining < a.remaining ? b : a;
}
