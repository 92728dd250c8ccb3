/**
 * @module The LimitStore adapter over the LimitsStore Durable Object: one object per user and
 * per IP, and the shared budgets split over `budgetShards` shard objects, so no single object
 * sees every stream in the world.
 */
import type { LedgerRecord } from "../ledger/record";
import {
  applicableBudgets,
  type BudgetSpec,
  budgetWindow,
  decideHold,
  type HoldDecision,
  isShared,
  sharedBudgets,
} from "./budget";
import type { BudgetEntry } from "./durable-budgets";
import type { LimitsStore } from "./durable-object";
import { tighter } from "./sliding-window";
import {
  type Admission,
  type AdmissionRequest,
  type BudgetOutcome,
  type BudgetView,
  type Clock,
  type ClockedStore,
  type LimitSpecs,
  systemClock,
  type UsageSnapshot,
} from "./store";

/**
 * Shard `shard`'s part of a budget's ceiling: the ceiling split as evenly as whole µUSD allow,
 * the parts summing to exactly the ceiling.
 */
export function shardLimit(limit: number, shards: number, shard: number): number {
  return Math.floor(limit / shards) + (shard < limit % shards ? 1 : 0);
}

/**
 * Builds the Durable Object store; `ns` is the LIMITS binding, object names start with `prefix`.
 * The objects decide at the time `now` gives them: an admission's `at`, else the caller's clock.
 */
export function durableStore(
  ns: DurableObjectNamespace<LimitsStore>,
  specs: LimitSpecs,
  { prefix = "mb", now = systemClock }: { prefix?: string; now?: Clock } = {},
): ClockedStore {
  const user = (key: string) => ns.get(ns.idFromName(`${prefix}:user:${key}`));
  const ip = (key: string) => ns.get(ns.idFromName(`${prefix}:ip:${key}`));
  const shardObject = (i: number) => ns.get(ns.idFromName(`${prefix}:budget-shard:${i}`));
  const metrics = () => ns.get(ns.idFromName(`${prefix}:metrics`));
  const shards = specs.budgetShards;
  const entry = (b: BudgetSpec, at: number, limit = b.limitMicroUsd): BudgetEntry => ({
    key: `${b.name}:${budgetWindow(b, at).id}`,
    limit,
  });
  const own = (anonymous: boolean) =>
    applicableBudgets(specs.budgets, anonymous).filter((b) => !isShared(b.name));
  const shared = (anonymous: boolean) =>
    applicableBudgets(specs.budgets, anonymous).filter((b) => isShared(b.name));
  const shardEntries = (list: BudgetSpec[], at: number, i: number) =>
    list.map((b) => entry(b, at, shardLimit(b.limitMicroUsd, shards, i)));
  /** Spend stays countable until the window and every hold in it are long gone. */
  const keepUntil = (at: number) => at + 2 * 86_400_000 + specs.holdTtlMs;

  const cancelIn = {
    user: (r: AdmissionRequest) =>
      user(r.userKey).cancelAdmission(
        r.id,
        "rate:user",
        specs.user,
        r.anonymous ? specs.anonHourly : null,
        r.at,
        now(),
      ),
    // The /64's object and the /48's: a cancel of what counted nothing only marks it.
    ip: (r: AdmissionRequest) => {
      const at = now();
      return Promise.all([
        ip(r.ipKey).cancelAdmission(r.id, "rate:ip", specs.ip, null, r.at, at),
        r.wideIpKey
          ? ip(r.wideIpKey).cancelAdmission(r.id, "rate:ip", specs.ipWide, null, r.at, at)
          : null,
      ]);
    },
  };

  /**
   * Holds against the shared budgets in one shard, `first` (picked at random). Only when that
   * shard cannot pay for one token are the others read (all at once, read only) and the one
   * with the most left is asked, and so on until one holds or none can pay: so a refusal means
   * that no shard could pay for one token, and what the budget leaves unused is less than one
   * token (and the prompt) per shard. Reading before holding never holds twice, even briefly.
   */
  async function holdShared(r: AdmissionRequest, list: BudgetSpec[], first: number) {
    const ask = (i: number) =>
      shardObject(i).holdShared(
        r.id,
        shardEntries(list, r.at, i),
        r.price,
        r.at,
        r.at + specs.holdTtlMs,
      );
    const refused = await ask(first);
    if (refused.ok) return { decision: refused, shard: first };
    const untried = new Set(Array.from({ length: shards }, (_, k) => k).filter((k) => k !== first));
    while (untried.size > 0) {
      const candidates = [...untried];
      const states = await Promise.all(
        candidates.map((k) => shardObject(k).readBudgets(shardEntries(list, r.at, k), r.at)),
      );
      const free = states.map((s) => Math.min(...s.map((b) => b.limit - b.spent - b.held)));
      const best = free.indexOf(Math.max(...free));
      const shard = candidates[best] as number;
      if (!decideHold(r.price, states[best] ?? []).ok) break;
      untried.delete(shard);
      const decision = await ask(shard);
      if (decision.ok) return { decision, shard };
    }
    return { decision: refused, shard: first };
  }

  return {
    kind: "durable_object",
    now,
    async admit(r): Promise<Admission> {
      // The user's window, quota and own budget live in one object, the IP's window in another,
      // a shard of the shared budgets in a third: all are asked at once (one round trip in
      // time), and a refusal by one is undone in the others before the answer, so a refused
      // request counts nothing (a quota refusal still counts in the rate windows).
      const quota = r.anonymous ? { hourly: specs.anonHourly, total: specs.anonTotal } : null;
      const ownBudgets = own(r.anonymous);
      const sharedList = shared(r.anonymous);
      const ownHold = {
        entries: ownBudgets.map((b) => entry(b, r.at)),
        price: r.price,
        expiresAt: r.at + specs.holdTtlMs,
      };
      const [ua, na, wa, s] = await Promise.all([
        user(r.userKey).admit(r.id, "rate:user", specs.user, quota, r.at, ownHold),
        ip(r.ipKey).admit(r.id, "rate:ip", specs.ip, null, r.at),
        r.wideIpKey ? ip(r.wideIpKey).admit(r.id, "rate:ip", specs.ipWide, null, r.at) : null,
        sharedList.length > 0
          ? holdShared(r, sharedList, Math.floor(Math.random() * shards))
          : null,
      ]);
      if ("cancelled" in ua || "cancelled" in na || (wa && "cancelled" in wa)) {
        if (s?.decision.ok) await shardObject(s.shard).releaseHold(r.id);
        throw new Error("the admission was cancelled or already made");
      }
      const [u, narrow, wide] = [ua, na, wa as Exclude<typeof wa, { cancelled: true }>];
      // The address's answer is the tighter of its /64's and (IPv6) its /48's.
      const i = { window: wide ? tighter(narrow.window, wide.window) : narrow.window };
      const sharedOk = s === null || s.decision.ok;
      const windowsOk = u.window.success && i.window.success;
      // A quota refusal counts in the rate windows; any other refusal counts nothing.
      const quotaRefused = windowsOk && u.budget === null;
      if (!(windowsOk && u.budget?.ok && sharedOk)) {
        const undo: Promise<unknown>[] = [];
        if (s?.decision.ok) undo.push(shardObject(s.shard).releaseHold(r.id));
        if (!quotaRefused) {
          // An own-budget refusal was already undone inside the user's object.
          if (u.window.success && u.budget?.ok !== false) undo.push(cancelIn.user(r));
          if (narrow.window.success || wide?.window.success) undo.push(cancelIn.ip(r));
        }
        await Promise.all(undo);
      }
      if (!u.window.success || !i.window.success) {
        return { user: u.window, ip: i.window, quota: null, budget: null };
      }
      if (u.budget === null) return { user: u.window, ip: i.window, quota: u.quota, budget: null };
      const refusal = (list: BudgetSpec[], d: HoldDecision): BudgetOutcome | null => {
        if (d.ok) return null;
        const b = list[d.refusedBy] as BudgetSpec;
        return {
          ok: false,
          budget: b.name,
          settledOut: d.settledOut,
          endsAt: budgetWindow(b, r.at).endsAt,
        };
      };
      const refused = refusal(ownBudgets, u.budget) ?? (s ? refusal(sharedList, s.decision) : null);
      if (refused) return { user: u.window, ip: i.window, quota: u.quota, budget: refused };
      // Both decided a hold; the smaller one stands, and the larger is trimmed to it.
      const mine = u.budget as Extract<HoldDecision, { ok: true }>;
      const theirs = (s?.decision ?? mine) as Extract<HoldDecision, { ok: true }>;
      const hold = mine.holdMicroUsd <= theirs.holdMicroUsd ? mine : theirs;
      const pending: Promise<unknown>[] = [];
      if (mine.holdMicroUsd > hold.holdMicroUsd && ownBudgets.length > 0)
        pending.push(user(r.userKey).trimHold(r.id, hold.holdMicroUsd));
      if (s && theirs.holdMicroUsd > hold.holdMicroUsd)
        pending.push(shardObject(s.shard).trimHold(r.id, hold.holdMicroUsd));
      return {
        user: u.window,
        ip: i.window,
        quota: u.quota,
        budget: {
          ok: true,
          maxTokens: hold.maxTokens,
          ticket: {
            id: r.id,
            at: r.at,
            microUsd: hold.holdMicroUsd,
            anonymous: r.anonymous,
            shard: s?.shard ?? 0,
          },
        },
        pending: Promise.all(pending).then(() => {}),
      };
    },
    async cancelAdmission(r) {
      const list = shared(r.anonymous);
      const releases = list.length
        ? Array.from({ length: shards }, (_, k) => shardObject(k).releaseHold(r.id))
        : [];
      await Promise.all([cancelIn.user(r), cancelIn.ip(r), ...releases]);
    },
    refundQuota: (userKey, spentAt) => user(userKey).refundQuota(specs.anonHourly, spentAt, now()),
    async hitSessionMint(ipKey, wideKey) {
      // Per /64 and, for IPv6, per /48, at once; a refusal by one still counts in the other.
      const at = now();
      const [a, b] = await Promise.all([
        ip(ipKey).hit("mint", specs.sessionsPerIp, at),
        wideKey ? ip(wideKey).hit("mint", specs.sessionsPerIpWide, at) : null,
      ]);
      return b ? tighter(a, b) : a;
    },
    hitUsageRead: (userKey) => user(userKey).hit("usage", specs.usageReads, now()),
    async usage(userKey, ipKey, anonymous): Promise<UsageSnapshot> {
      const u = user(userKey);
      const at = now();
      const [mine] = own(anonymous);
      const [userWindow, ipWindow, quota, spend, budget] = await Promise.all([
        u.read("rate:user", specs.user, at),
        ip(ipKey).read("rate:ip", specs.ip, at),
        anonymous ? u.readQuota(specs.anonHourly, specs.anonTotal, at) : null,
        u.spend(at),
        mine ? u.readBudgets([entry(mine, at)], at) : null,
      ]);
      const view: BudgetView | null =
        mine && budget?.[0]
          ? { name: mine.name, ...budget[0], endsAt: budgetWindow(mine, at).endsAt }
          : null;
      return { user: userWindow, ip: ipWindow, quota, spend, budget: view };
    },
    async writeLedger(record: LedgerRecord) {
      const hold = record.hold;
      const anonymous = hold?.anonymous ?? record.userKey.startsWith("anonymous:");
      const at = hold?.at ?? record.startedAt;
      const ownKeys = own(anonymous).map((b) => entry(b, at).key);
      const sharedKeys = shared(anonymous).map((b) => entry(b, at).key);
      const writtenAt = now();
      const [written] = await Promise.all([
        user(record.userKey).writeLedger(record, ownKeys, keepUntil(at), writtenAt),
        sharedKeys.length > 0
          ? shardObject(hold?.shard ?? 0).settleShared(
              record.recordId,
              hold?.id ?? "",
              sharedKeys,
              record.costMicroUsd,
              keepUntil(at),
              writtenAt,
            )
          : null,
      ]);
      return written;
    },
    async sharedBudgets(at) {
      const list = sharedBudgets(specs.budgets);
      if (list.length === 0) return [];
      const parts = await Promise.all(
        Array.from({ length: shards }, (_, k) =>
          shardObject(k).readBudgets(shardEntries(list, at, k), at),
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
    },
    // One object holds the metrics: every isolate's counters meet there.
    recordMetrics: (counters, at) => metrics().recordMetrics(counters, at),
    readMetrics: (at) => metrics().readMetrics(at),
  };
}
