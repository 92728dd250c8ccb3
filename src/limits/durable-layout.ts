/**
 * @module Where the Durable Object store keeps what: the object of each user, address, budget
 * shard and the metrics, and the budget entries each of them holds. Built once per store.
 */
import { applicableBudgets, type BudgetSpec, budgetWindow, isShared } from "./budget";
import type { BudgetEntry } from "./durable-budgets";
import type { LimitsStore } from "./durable-object";
import type { Clock, LimitSpecs } from "./store";

/**
 * Shard `shard`'s part of a budget's ceiling: the ceiling split as evenly as whole µUSD allow,
 * the parts summing to exactly the ceiling.
 */
export function shardLimit(limit: number, shards: number, shard: number): number {
  return Math.floor(limit / shards) + (shard < limit % shards ? 1 : 0);
}

/** The store's objects and budgets, and the clock it decides by. */
export interface DurableLayout {
  specs: LimitSpecs;
  now: Clock;
  /** How many shards each shared budget is split over. */
  shards: number;
  user(key: string): DurableObjectStub<LimitsStore>;
  ip(key: string): DurableObjectStub<LimitsStore>;
  shard(i: number): DurableObjectStub<LimitsStore>;
  /** The one object every isolate's metrics meet in. */
  metrics(): DurableObjectStub<LimitsStore>;
  /** The budgets of a caller's own (held in the user's object). */
  own(anonymous: boolean): BudgetSpec[];
  /** The shared budgets a caller's streams count in (held in the shards). */
  shared(anonymous: boolean): BudgetSpec[];
  /** Budget `b`'s entry for the window `at` falls in, whole. */
  entry(b: BudgetSpec, at: number): BudgetEntry;
  /** Shard `i`'s entries of the shared budgets `list` for the window `at` falls in. */
  shardEntries(list: BudgetSpec[], at: number, i: number): BudgetEntry[];
  /** Spend stays countable until the window and every hold in it are long gone. */
  keepUntil(at: number): number;
}

/** The layout of the objects in `ns` whose names start with `prefix`. */
export function durableLayout(
  ns: DurableObjectNamespace<LimitsStore>,
  specs: LimitSpecs,
  prefix: string,
  now: Clock,
): DurableLayout {
  const shards = specs.budgetShards;
  const entry = (b: BudgetSpec, at: number, limit = b.limitMicroUsd): BudgetEntry => ({
    key: `${b.name}:${budgetWindow(b, at).id}`,
    limit,
  });
  return {
    specs,
    now,
    shards,
    user: (key) => ns.get(ns.idFromName(`${prefix}:user:${key}`)),
    ip: (key) => ns.get(ns.idFromName(`${prefix}:ip:${key}`)),
    shard: (i) => ns.get(ns.idFromName(`${prefix}:budget-shard:${i}`)),
    metrics: () => ns.get(ns.idFromName(`${prefix}:metrics`)),
    own: (anonymous) =>
      applicableBudgets(specs.budgets, anonymous).filter((b) => !isShared(b.name)),
    shared: (anonymous) =>
      applicableBudgets(specs.budgets, anonymous).filter((b) => isShared(b.name)),
    entry: (b, at) => entry(b, at),
    shardEntries: (list, at, i) =>
      list.map((b) => entry(b, at, shardLimit(b.limitMicroUsd, shards, i))),
    keepUntil: (at) => at + 2 * 86_400_000 + specs.holdTtlMs,
  };
}
