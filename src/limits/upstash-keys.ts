/**
 * @module The Upstash store's key layout: ratelimit's for the sliding windows, ours for the
 * quotas, budgets, spend, ledger and metrics, every key under one prefix. Built once per store.
 */
import { type BudgetSpec, budgetWindow, isShared } from "./budget";
import { windowKeys } from "./sliding-window";
import type { AdmissionRequest, LimitSpecs } from "./store";
import { ADMIT_QUOTA_KEYS, ADMIT_WINDOW_KEYS, byName } from "./upstash-protocol";

/** The keys of one store, by what they hold. */
export interface UpstashKeys {
  /** The current and previous bucket of the user's, the IP's, the /48's rate window at `at`. */
  userWindow(userKey: string, at: number): [string, string];
  ipWindow(ipKey: string, at: number): [string, string];
  /** The hourly quota's current and previous bucket at `at`, and the total quota. */
  quota(userKey: string, at: number): [string, string, string];
  /** A budget's hash and sorted set for the window `at` falls in (own budgets per user). */
  budget(b: BudgetSpec, userKey: string, at: number): string[];
  /** The admission's keys by name (ADMIT_KEYS), then those of its `budgets`. */
  admission(r: AdmissionRequest, budgets: BudgetSpec[]): string[];
  /** A user's spend counters: in all, streams, and on UTC day `day`. */
  spend(userKey: string, day: string): { total: string; streams: string; day: string };
  /** A ledger record's key. */
  record(recordId: string): string;
  /** A metric bucket's hash. */
  metrics(bucket: string): string;
  /** Ratelimit's prefix for the single window `name` (minting, usage reads). */
  single(name: string): string;
}

/** The keys under `prefix`. */
export function upstashKeys(prefix: string, specs: LimitSpecs): UpstashKeys {
  const userWindow = (userKey: string, at: number) =>
    windowKeys(`${prefix}:rl:user:${userKey}`, specs.user, at);
  const ipWindow = (ipKey: string, at: number) =>
    windowKeys(`${prefix}:rl:ip:${ipKey}`, specs.ip, at);
  const wideWindow = (wideKey: string, at: number) =>
    windowKeys(`${prefix}:rl:ip48:${wideKey}`, specs.ipWide, at);
  const quota = (userKey: string, at: number): [string, string, string] => {
    const base = `${prefix}:quota:${userKey}`;
    return [...windowKeys(`${base}:hourly`, specs.anonHourly, at), `${base}:total`];
  };
  const budget = (b: BudgetSpec, userKey: string, at: number) => {
    const base = `${prefix}:budget:${b.name}:${isShared(b.name) ? "all" : userKey}`;
    const id = budgetWindow(b, at).id;
    return [`${base}:${id}`, `${base}:${id}:holds`];
  };
  const admission = (r: AdmissionRequest, budgets: BudgetSpec[]) => {
    const [userCurrent, userPrevious] = userWindow(r.userKey, r.at);
    const [ipCurrent, ipPrevious] = ipWindow(r.ipKey, r.at);
    // For IPv4 the /48's pair is the IP's again, which nothing touches (its limit is 0).
    const [wideCurrent, widePrevious] = r.wideIpKey
      ? wideWindow(r.wideIpKey, r.at)
      : [ipCurrent, ipPrevious];
    const windows = byName(ADMIT_WINDOW_KEYS, {
      userCurrent,
      userPrevious,
      ipCurrent,
      ipPrevious,
      mark: `${prefix}:admission:${r.id}`,
      wideCurrent,
      widePrevious,
    });
    const [hourlyCurrent, hourlyPrevious, total] = quota(r.userKey, r.at);
    const quotas = r.anonymous
      ? byName(ADMIT_QUOTA_KEYS, { hourlyCurrent, hourlyPrevious, total })
      : [];
    return [...windows, ...quotas, ...budgets.flatMap((b) => budget(b, r.userKey, r.at))];
  };
  return {
    userWindow,
    ipWindow,
    quota,
    budget,
    admission,
    spend: (userKey, day) => ({
      total: `${prefix}:spend:${userKey}:total`,
      streams: `${prefix}:spend:${userKey}:streams`,
      day: `${prefix}:spend:${userKey}:day:${day}`,
    }),
    record: (recordId) => `${prefix}:ledger:${recordId}`,
    metrics: (bucket) => `${prefix}:metrics:${bucket}`,
    single: (name) => `${prefix}:rl:${name}`,
  };
}
