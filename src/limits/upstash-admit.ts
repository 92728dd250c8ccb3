/**
 * @module The Upstash store's admission: one EVAL of lua/admit.lua, which checks the rate
 * windows, the anonymous quotas and the budgets in contract order and counts only what passed;
 * here its arguments are built by name and its answer read back step by step. Its cancel is
 * one EVAL of lua/cancel-admission.lua over the same keys.
 */
import type { WindowSpec } from "../config";
import { type BudgetSpec, budgetWindow } from "./budget";
import { passesAt, windowEnd } from "./sliding-window";
import type {
  Admission,
  AdmissionRequest,
  BudgetOutcome,
  LimitSpecs,
  QuotaResult,
  WindowResult,
} from "./store";
import type { UpstashKeys } from "./upstash-keys";
import {
  ADMIT_ANSWER,
  ADMIT_ARGS,
  byName,
  CANCEL_ARGS,
  fieldsOf,
  type LoadedScript,
  REFUSED,
} from "./upstash-protocol";

/** Counters of the anonymous total quota live this long after their last use. */
const TOTAL_QUOTA_TTL_MS = 400 * 86_400_000;
/**
 * How long an admission's mark lives: longer than any admission can take to reach the store
 * (its call is aborted after LIMITS_TIMEOUT_MS), short enough to cost little memory.
 */
const ADMISSION_MARK_TTL_MS = 60_000;

/** What the admission needs of the store: its limits, its keys, its two scripts. */
export interface AdmitDeps {
  specs: LimitSpecs;
  keys: UpstashKeys;
  admit: LoadedScript<number[]>;
  cancel: LoadedScript<unknown>;
}

type AdmitAnswer = ReturnType<typeof fieldsOf<typeof ADMIT_ANSWER>>;

/** Admits `r` against `budgets` (those that apply to it) in one round trip. */
export async function admit(
  u: AdmitDeps,
  r: AdmissionRequest,
  budgets: BudgetSpec[],
): Promise<Admission> {
  const answer = await u.admit.exec(u.keys.admission(r, budgets), admitArgs(u.specs, r, budgets));
  const a = fieldsOf(ADMIT_ANSWER, answer);
  if (a.refused === REFUSED.cancelled) {
    throw new Error("the admission was cancelled before it reached the store");
  }
  return admissionOf(a, r, budgets, u.specs);
}

/** Undoes what `r` counted, if anything, and makes its late arrival count nothing. */
export async function cancelAdmission(
  u: AdmitDeps,
  r: AdmissionRequest,
  budgets: BudgetSpec[],
): Promise<void> {
  await u.cancel.exec(
    u.keys.admission(r, budgets),
    byName(CANCEL_ARGS, {
      markTtl: ADMISSION_MARK_TTL_MS,
      anonymous: r.anonymous ? 1 : 0,
      admissionId: r.id,
      wide: r.wideIpKey ? 1 : 0,
    }),
  );
}

/** The script's arguments by name (ADMIT_ARGS), then each budget's limit and key TTL. */
function admitArgs(specs: LimitSpecs, r: AdmissionRequest, budgets: BudgetSpec[]): string[] {
  const { price } = r;
  const argv = byName(ADMIT_ARGS, {
    now: r.at,
    userLimit: specs.user.limit,
    userWindow: specs.user.windowMs,
    ipLimit: specs.ip.limit,
    ipWindow: specs.ip.windowMs,
    markTtl: ADMISSION_MARK_TTL_MS,
    anonymous: r.anonymous ? 1 : 0,
    hourlyLimit: specs.anonHourly.limit,
    hourlyWindow: specs.anonHourly.windowMs,
    totalQuota: specs.anonTotal,
    totalQuotaTtl: TOTAL_QUOTA_TTL_MS,
    capMicroUsd: price.capMicroUsd,
    inputMicroUsd: price.inputMicroUsd,
    outputPicoUsd: price.outputPicoUsd,
    maxTokensCeiling: price.maxTokensCeiling,
    holdTtl: specs.holdTtlMs,
    admissionId: r.id,
    wideLimit: r.wideIpKey ? specs.ipWide.limit : 0,
  });
  // A budget's keys outlive its window by the longest a hold can wait for its settlement.
  for (const b of budgets) {
    const ttl = budgetWindow(b, r.at).endsAt - r.at + specs.holdTtlMs + 3_600_000;
    argv.push(String(b.limitMicroUsd), String(ttl));
  }
  return argv;
}

/** The admission the script's answer `a` describes, step by step in contract order. */
function admissionOf(
  a: AdmitAnswer,
  r: AdmissionRequest,
  budgets: BudgetSpec[],
  specs: LimitSpecs,
): Admission {
  const user = windowResult(a.refused !== REFUSED.user, a.userLeft, specs.user, r.at, a);
  const ip = ipWindowOf(a, specs, r.at);
  if (!user.success || !ip.success) return { user, ip, quota: null, budget: null };
  const quota = r.anonymous ? quotaOf(a, specs, r.at) : null;
  if (quota && !quota.success) return { user, ip, quota, budget: null };
  return { user, ip, quota, budget: budgetOf(a, r, budgets) };
}

/** The address's window: the /48's refusal is the address's, per IP with its own wider limit. */
function ipWindowOf(a: AdmitAnswer, specs: LimitSpecs, at: number): WindowResult {
  if (a.refused === REFUSED.ipWide) return windowResult(false, 0, specs.ipWide, at, a);
  return windowResult(a.refused !== REFUSED.ip, a.ipLeft, specs.ip, at, a);
}

/** The anonymous quotas: the hourly window and the total, all or nothing. */
function quotaOf(a: AdmitAnswer, specs: LimitSpecs, at: number): QuotaResult {
  const hourlyOk = a.refused !== REFUSED.hourly;
  const totalOk = a.refused !== REFUSED.total;
  return {
    success: hourlyOk && totalOk,
    exhausted: !hourlyOk ? "hourly" : !totalOk ? "total" : null,
    hourly: windowResult(hourlyOk, a.hourlyLeft, specs.anonHourly, at, a),
    total: { limit: specs.anonTotal, remaining: a.totalLeft, success: totalOk },
  };
}

/** The budgets: the one that refused, or the hold the script made. */
function budgetOf(a: AdmitAnswer, r: AdmissionRequest, budgets: BudgetSpec[]): BudgetOutcome {
  if (a.refused === REFUSED.budget) {
    const b = budgets[a.refusedBy] as BudgetSpec;
    return {
      ok: false,
      budget: b.name,
      settledOut: a.settledOut === 1,
      endsAt: budgetWindow(b, r.at).endsAt,
    };
  }
  const ticket = { id: r.id, at: r.at, microUsd: a.hold, anonymous: r.anonymous, shard: 0 };
  return { ok: true, maxTokens: a.maxTokens, ticket };
}

/**
 * One window's result from what the script said was left in it; a refused window's two counts
 * (the answer's `countCurrent`, `countPrevious`) say when the same request would pass.
 */
function windowResult(
  success: boolean,
  left: number,
  spec: WindowSpec,
  now: number,
  a: AdmitAnswer,
): WindowResult {
  return {
    success,
    limit: spec.limit,
    remaining: success ? Math.max(0, left) : 0,
    reset: windowEnd(now, spec),
    ...(success ? {} : { retryAt: passesAt(a.countCurrent, a.countPrevious, now, spec) }),
  };
}
