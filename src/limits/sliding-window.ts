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
    return { result: { success: false, limit: spec.limit, remaining: 0, reset }, current };
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
