/**
 * @module The LimitStore adapter over the LimitsStore Durable Object: one object per user and
 * per IP, and the shared budgets split over `budgetShards` shard objects, so no single object
 * sees every stream in the world. The admission is in durable-store-admit.ts.
 */
import type { LedgerRecord } from "../ledger/record";
import { budgetWindow, sharedBudgets } from "./budget";
import { type DurableLayout, durableLayout } from "./durable-layout";
import type { LimitsStore } from "./durable-object";
import { admit, cancelAdmission } from "./durable-store-admit";
import { tighter } from "./sliding-window";
import {
  type BudgetView,
  type Clock,
  type ClockedStore,
  type LimitSpecs,
  systemClock,
  type UsageSnapshot,
  type WindowResult,
} from "./store";

/**
 * Builds the Durable Object store; `ns` is the LIMITS binding, object names start with `prefix`.
 * The objects decide at the time `now` gives them: an admission's `at`, else the caller's clock.
 */
export function durableStore(
  ns: DurableObjectNamespace<LimitsStore>,
  specs: LimitSpecs,
  { prefix = "mb", now = systemClock }: { prefix?: string; now?: Clock } = {},
): ClockedStore {
  const d = durableLayout(ns, specs, prefix, now);
  return {
    kind: "durable_object",
    now,
    admit: (r) => admit(d, r),
    cancelAdmission: (r) => cancelAdmission(d, r),
    refundQuota: (userKey, spentAt) =>
      d.user(userKey).refundQuota(specs.anonHourly, spentAt, now()),
    hitSessionMint: (ipKey, wideKey) => hitSessionMint(d, ipKey, wideKey),
    hitUsageRead: (userKey) => d.user(userKey).hit("usage", specs.usageReads, now()),
    usage: (userKey, ipKey, anonymous) => usage(d, userKey, ipKey, anonymous),
    writeLedger: (record) => writeLedger(d, record),
    sharedBudgets: (at) => readSharedBudgets(d, at),
    // One object holds the metrics: every isolate's counters meet there.
    recordMetrics: (counters, at) => d.metrics().recordMetrics(counters, at),
    readMetrics: (at) => d.metrics().readMetrics(at),
  };
}

/** Minting per /64 and, for IPv6, per /48, at once; a refusal by one still counts in the other. */
async function hitSessionMint(
  d: DurableLayout,
  ipKey: string,
  wideKey: string | null,
): Promise<WindowResult> {
  const at = d.now();
  const [a, b] = await Promise.all([
    d.ip(ipKey).hit("mint", d.specs.sessionsPerIp, at),
    wideKey ? d.ip(wideKey).hit("mint", d.specs.sessionsPerIpWide, at) : null,
  ]);
  return b ? tighter(a, b) : a;
}

/** The caller's windows, quotas, spend and own budget, now, without changing them. */
async function usage(
  d: DurableLayout,
  userKey: string,
  ipKey: string,
  anonymous: boolean,
): Promise<UsageSnapshot> {
  const { specs } = d;
  const u = d.user(userKey);
  const at = d.now();
  const [mine] = d.own(anonymous);
  const [userWindow, ipWindow, quota, spend, budget] = await Promise.all([
    u.read("rate:user", specs.user, at),
    d.ip(ipKey).read("rate:ip", specs.ip, at),
    anonymous ? u.readQuota(specs.anonHourly, specs.anonTotal, at) : null,
    u.spend(at),
    mine ? u.readBudgets([d.entry(mine, at)], at) : null,
  ]);
  const view: BudgetView | null =
    mine && budget?.[0]
      ? { name: mine.name, ...budget[0], endsAt: budgetWindow(mine, at).endsAt }
      : null;
  return { user: userWindow, ip: ipWindow, quota, spend, budget: view };
}

/**
 * Writes the record in the user's object, settling its hold in the user's own budgets there and
 * in the shared budgets of the shard that held it, once per record.
 */
async function writeLedger(d: DurableLayout, record: LedgerRecord) {
  const hold = record.hold;
  const anonymous = hold?.anonymous ?? record.userKey.startsWith("anonymous:");
  const at = hold?.at ?? record.startedAt;
  const ownKeys = d.own(anonymous).map((b) => d.entry(b, at).key);
  const sharedKeys = d.shared(anonymous).map((b) => d.entry(b, at).key);
  const keepUntil = d.keepUntil(at);
  const writtenAt = d.now();
  const [written] = await Promise.all([
    d.user(record.userKey).writeLedger(record, ownKeys, keepUntil, writtenAt),
    sharedKeys.length > 0
      ? d
          .shard(hold?.shard ?? 0)
          .settleShared(
            record.recordId,
            hold?.id ?? "",
            sharedKeys,
            record.costMicroUsd,
            keepUntil,
            writtenAt,
          )
      : null,
  ]);
  return written;
}

/** The shared budgets' windows at `at`, each summed over its shards. */
async function readSharedBudgets(d: DurableLayout, at: number): Promise<BudgetView[]> {
  const list = sharedBudgets(d.specs.budgets);
  if (list.length === 0) return [];
  const parts = await Promise.all(
    Array.from({ length: d.shards }, (_, k) =>
      d.shard(k).readBudgets(d.shardEntries(list, at, k), at),
    ),
  );
  return list.map((b, j): BudgetView => {
    const sum = (f: "spent" | "held" | "expired") =>
      parts.reduce((t, p) => t + (p[j]?.[f] ?? 0), 0);
    return {
      name: b.name,
      limit: b.limitMicroUsd,
      spent: sum("spent"),
      held: sum("held"),
      expired: sum("expired"),
      endsAt: budgetWindow(b, at).endsAt,
    };
  });
}
