/**
 * @module Batches metric counters per isolate and store, so a flood of requests (even
 * unauthenticated ones) costs the store one write per isolate per flush interval, not one per
 * request: the limits store shares that capacity with the rate limiter, which fails closed.
 */
import type { LimitStore } from "../limits/store";
import { addCounters, type Counters } from "./metrics";

interface Batch {
  counters: Counters;
  /** A flush is already waiting in some request's waitUntil. */
  scheduled: boolean;
}

const batches = new WeakMap<LimitStore, Batch>();

/**
 * Adds `counters` to this isolate's batch for `store`. The first request of a batch flushes it
 * `flushMs` later (its promise is what the caller hands to waitUntil); the others return at
 * once. With `flushMs` 0 every request writes its own counters.
 */
export function queueMetrics(
  store: LimitStore,
  counters: Counters,
  flushMs: number,
): Promise<void> {
  if (flushMs <= 0) return store.recordMetrics(counters, Date.now());
  let batch = batches.get(store);
  if (!batch) {
    batch = { counters: {}, scheduled: false };
    batches.set(store, batch);
  }
  addCounters(batch.counters, counters);
  if (batch.scheduled) return Promise.resolve();
  batch.scheduled = true;
  const pending = batch;
  return new Promise<void>((resolve) => setTimeout(resolve, flushMs)).then(() => {
    const taken = pending.counters;
    pending.counters = {};
    pending.scheduled = false;
    return store.recordMetrics(taken, Date.now());
  });
}
