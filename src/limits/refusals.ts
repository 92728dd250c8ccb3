/**
 * @module How the limit stage says no: a budget's refusal (429 own, 503 shared), one window's
 * gate, and the RateLimit-* headers of the tightest window.
 */
import type { Config } from "../config";
import { AppError, type ErrorCode } from "../errors";
import type { Logger } from "../observe/log";
import { type BudgetName, isShared } from "./budget";
import type {
  Admission,
  AdmissionRequest,
  BudgetOutcome,
  QuotaResult,
  WindowResult,
} from "./store";

/** Seconds to wait when live holds (not settled spend) fill a budget: holds end with their streams. */
export const BUDGET_HELD_RETRY_S = 10;

const BUDGET_DETAIL: Record<BudgetName, string> = {
  user_daily: "your daily spend budget is used up",
  anon_daily: "the daily spend budget of this anonymous session is used up; sign in for more",
  anon_hourly: "the hourly spend budget for anonymous use of this service is exhausted",
  global_hourly: "the hourly spend budget of this service is exhausted",
};

/** A refusal by a rate limit or a quota: what to answer, and whose keys it binds until when. */
export interface Refusal {
  code: ErrorCode;
  detail: string;
  /** Unix ms at which the same request would pass. */
  retryAt: number;
  /** The deny-cache keys it binds (the user's, the /64's or the /48's). */
  keys: (string | null)[];
}

/** The refusal of the rate window that refused the admission (the user's first), or null. */
export function rateRefusal(
  { user, ip }: Admission,
  admission: AdmissionRequest,
  config: Config,
): Refusal | null {
  const refused = !user.success ? user : !ip.success ? ip : null;
  if (!refused) return null;
  const byUser = refused === user;
  const spec = byUser ? config.rateLimitUser : config.rateLimitIp;
  // The /48 of an IPv6 address has a wider limit of its own.
  const wide = !byUser && refused.limit !== spec.limit;
  const which = byUser ? "per-user" : wide ? "per-IP (/48)" : "per-IP";
  return {
    code: "rate_limited",
    detail: `${which} rate limit reached: ${refused.limit} requests per ${spec.windowMs / 1000} s`,
    retryAt: refused.retryAt ?? refused.reset,
    keys: byUser ? [admission.userKey] : wide ? [admission.wideIpKey] : [admission.ipKey],
  };
}

/** The refusal of the anonymous quota that refused the admission, or null. */
export function quotaRefusal(
  quota: QuotaResult | null,
  admission: AdmissionRequest,
  config: Config,
  now: number,
): Refusal | null {
  if (!quota || quota.success) return null;
  const hourly = quota.exhausted === "hourly";
  return {
    code: "quota_exceeded",
    detail: hourly
      ? `anonymous hourly quota reached: ${config.anonQuotaHourly} streams per hour`
      : `anonymous total quota reached: ${config.anonQuotaTotal} streams; sign in to continue`,
    // The total quota never comes back; an hour is an honest "not before".
    retryAt: hourly ? (quota.hourly.retryAt ?? quota.hourly.reset) : now + 3_600_000,
    keys: [admission.userKey],
  };
}

/** The refusal of a budget: 429 for the caller's own, 503 for a shared one, never holding anything. */
export function budgetRefusal(
  refused: Extract<BudgetOutcome, { ok: false }>,
  now: number,
  headers: Record<string, string>,
): AppError {
  const shared = isShared(refused.budget);
  const retryAfter = refused.settledOut
    ? seconds(refused.endsAt - now)
    : Math.min(BUDGET_HELD_RETRY_S, seconds(refused.endsAt - now));
  const detail = `${BUDGET_DETAIL[refused.budget]} (budget ${refused.budget})`;
  return new AppError(shared ? "budget_exhausted" : "budget_exceeded", detail, {
    retryAfter,
    headers,
  });
}

/** The shared budgets' windows this isolate has said are spent: `${name}:${endsAt}`. */
const warnedExhausted = new Set<string>();

/**
 * One warn line per isolate when a shared budget's window is spent: it refuses everyone until
 * the window ends, which an operator wants to hear once, not on every refused request (those
 * carry the error_code on their access line).
 */
export function warnExhaustedOnce(log: Logger, budget: BudgetName, endsAt: number): void {
  const key = `${budget}:${endsAt}`;
  if (warnedExhausted.has(key)) return;
  if (warnedExhausted.size >= 64) warnedExhausted.clear();
  warnedExhausted.add(key);
  log.warn("budget_exhausted", { budget, ends_at: new Date(endsAt).toISOString() });
}

/** Milliseconds as the whole seconds of a Retry-After or RateLimit-Reset (at least 1). */
export const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

/**
 * The RateLimit-* headers (draft-ietf-httpapi-ratelimit-headers, separate fields) for the
 * tightest window, its reset counted from `now`.
 */
export function rateLimitHeaders(windows: WindowResult[], now: number): Record<string, string> {
  const tightest = windows.reduce((a, b) => (b.remaining < a.remaining ? b : a));
  return {
    "RateLimit-Limit": String(tightest.limit),
    "RateLimit-Remaining": String(tightest.remaining),
    "RateLimit-Reset": String(seconds(tightest.reset - now)),
  };
}

/**
 * The gate of one window (minting, usage reads): throws `code` (429, with Retry-After) when the
 * window refused, otherwise returns its RateLimit-* headers for the answer.
 */
export function passWindow(
  window: WindowResult,
  now: number,
  code: ErrorCode,
  detail: string,
): Record<string, string> {
  const headers = rateLimitHeaders([window], now);
  if (!window.success) {
    const retryAt = window.retryAt ?? window.reset;
    throw new AppError(code, detail, { retryAfter: seconds(retryAt - now), headers });
  }
  return headers;
}
