/** @module The limits store port: what the limit, usage and ledger stages need, whatever holds the data. */
import type { WindowSpec } from "../config";
import type { LedgerRecord } from "../ledger/record";
import type { Counters, MetricWindow } from "../observe/metrics";
import type { BudgetName, BudgetSpecs, BudgetState, HoldPrice, HoldTicket } from "./budget";

/** The outcome of one sliding window: an expected result, not an exception. */
export interface WindowResult {
  success: boolean;
  limit: number;
  /** Hits left in the window after this one (0 when refused). */
  remaining: number;
  /** Unix ms when the current window ends. */
  reset: number;
  /** When refused: the earliest unix ms at which the same request would pass this window. */
  retryAt?: number;
}

/** The outcome of spending one anonymous quota unit (hourly and total, all or nothing). */
export interface QuotaResult {
  success: boolean;
  /** Which quota refused, when one did. */
  exhausted: "hourly" | "total" | null;
  hourly: WindowResult;
  total: { limit: number; remaining: number; success: boolean };
}

/**
 * One admission decision: both rate windows and, for anonymous callers, the quotas. A refusal
 * counts nothing: the windows count a hit only when both pass, and the quota is spent only when
 * both passed and the quota itself allows it (contract order: rate limits, then quotas).
 */
export interface Admission {
  user: WindowResult;
  ip: WindowResult;
  /** The quotas, or null for a signed-in caller and when a rate limit refused (nothing spent). */
  quota: QuotaResult | null;
  /** The budgets' answer, or null when a rate limit or quota refused first. */
  budget: BudgetOutcome | null;
  /** Background work the admission left (trimming an over-reserved hold), for waitUntil. */
  pending?: Promise<void>;
}

/**
 * The budgets' answer: a hold (the stream's `max_tokens` and the µUSD held against every
 * applicable budget), or the budget that refused. A refusal holds nothing.
 */
export type BudgetOutcome =
  | { ok: true; maxTokens: number; ticket: HoldTicket }
  | {
      ok: false;
      budget: BudgetName;
      /** Settled spend alone fills it: it is back only at `endsAt` (unix ms). */
      settledOut: boolean;
      endsAt: number;
    };

/** One request's admission: who, from where, when, and an id of its own. */
export interface AdmissionRequest {
  /** Made by the server, unique per request: it finds what this admission counted, and only that. */
  id: string;
  userKey: string;
  ipKey: string;
  /** For IPv6 the /48 the /64 of `ipKey` lies in, counted at four times the limit; else null. */
  wideIpKey: string | null;
  /** Unix ms: the buckets it counts in. */
  at: number;
  anonymous: boolean;
  /** What this stream may cost: the budgets hold its worst case. */
  price: HoldPrice;
}

/** What `/api/v1/usage` shows: the caller's windows without spending anything. */
export interface UsageSnapshot {
  user: WindowResult;
  ip: WindowResult;
  quota: { hourly: WindowResult; total: { limit: number; remaining: number } } | null;
  spend: SpendSummary;
  /** The caller's own budget (daily), or null when it is off. */
  budget: BudgetView | null;
}

/** One budget's window as an operator or its owner sees it, µUSD. */
export interface BudgetView extends BudgetState {
  name: BudgetName;
  /**
   * µUSD of holds that expired unsettled and so count in `spent` at their full amount, until
   * their stream's record (a late write, a replay) replaces them.
   */
  expired: number;
  /** Unix ms when the window ends. */
  endsAt: number;
}

/** Money spent by one user, from the ledger. */
export interface SpendSummary {
  totalUsd: number;
  todayUsd: number;
  streams: number;
}

/** Every limit the store enforces, parsed once from the config. */
export interface LimitSpecs {
  user: WindowSpec;
  ip: WindowSpec;
  /** An IPv6 /48: four times the /64's limit. */
  ipWide: WindowSpec;
  anonHourly: WindowSpec;
  anonTotal: number;
  sessionsPerIp: WindowSpec;
  sessionsPerIpWide: WindowSpec;
  usageReads: WindowSpec;
  budgets: BudgetSpecs;
  /** Shards per shared budget (Durable Object store only). */
  budgetShards: number;
  /** An unsettled hold expires this long after its admission. */
  holdTtlMs: number;
}

/** Unix ms now. */
export type Clock = () => number;

/**
 * The real clock. It looks `Date` up on every call, so a test that fakes `Date` (pinClock, for
 * tests that go through the whole Worker) still reaches a store built before it did.
 */
export const systemClock: Clock = () => Date.now();

/**
 * The port. Each method is one decision, made atomically by the store; adapters throw on any
 * store failure and never guess (the caller fails closed). Keys are already namespaced.
 */
export interface LimitStore {
  readonly kind: "upstash" | "durable_object";
  /**
   * Counts one request at `at` against the user's and the IP's windows and, when `anonymous`,
   * spends one unit of the hourly and total quotas: one round trip to the store. Rejects when
   * the admission was cancelled first.
   */
  admit(request: AdmissionRequest): Promise<Admission>;
  /**
   * Undoes what `admit(request)` counted, if it counted anything, and makes an `admit(request)`
   * that reaches the store later (one that timed out here) count nothing. For an admission whose
   * answer was lost: the request was refused with 503, so it must spend nothing. Idempotent.
   */
  cancelAdmission(request: AdmissionRequest): Promise<void>;
  /** Gives back one quota unit spent by `admit` at `spentAt` (unix ms) to the bucket it came from. */
  refundQuota(userKey: string, spentAt: number): Promise<void>;
  /** Counts one anonymous session minted from this IP (and, for IPv6, its /48). */
  hitSessionMint(ipKey: string, wideIpKey: string | null): Promise<WindowResult>;
  /** Counts one read of the user's usage (its own window, apart from the stream windows). */
  hitUsageRead(userKey: string): Promise<WindowResult>;
  /** Reads the caller's windows, quotas and spend without changing them. */
  usage(userKey: string, ipKey: string, anonymous: boolean): Promise<UsageSnapshot>;
  /**
   * Writes one ledger record and settles its stream's hold: the hold is replaced by the
   * record's cost in every budget it was held against, in the same atomic write. A second
   * write of the same record id changes nothing.
   */
  writeLedger(record: LedgerRecord): Promise<"written" | "duplicate">;
  /** The shared budgets' current windows (for operators; never shown to callers). */
  sharedBudgets(now: number): Promise<BudgetView[]>;
  /** Adds one request's counters to the metric buckets of `now`. */
  recordMetrics(counters: Counters, now: number): Promise<void>;
  /** Sums the metric buckets of each window ending at `now`. */
  readMetrics(now: number): Promise<Record<MetricWindow, Counters>>;
}

/**
 * A store with its clock: what it decides by when a call carries no time of its own, and what
 * the limit stage stamps admissions and refusals with, so that one clock rules a decision.
 */
export interface ClockedStore extends LimitStore {
  readonly now: Clock;
}
