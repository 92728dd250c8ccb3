/** @module The limit stage: client IP, rate limits, then anonymous quotas, in contract order. */
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../env";
import { AppError, type ErrorCode } from "../errors";
import { annotate } from "../observe/access-log";
import { describeError, type Logger } from "../observe/log";
import { withRetries } from "../retry";
import { holdPrice } from "../stream/cost";
import { type BudgetName, type HoldTicket, isShared } from "./budget";
import { DEV_LOOPBACK, ipKey, wideIpKey } from "./client-ip";
import { denyCacheFor } from "./deny-cache";
import { storeFor } from "./select-store";
import type {
  Admission,
  AdmissionRequest,
  BudgetOutcome,
  LimitStore,
  QuotaResult,
  WindowResult,
} from "./store";

/** What a request that passed the limits carries on to the stream. */
export interface LimitGrant {
  /** RateLimit-* headers for the response. */
  headers: Record<string, string>;
  /** The anonymous quota after this request, or null for signed-in users. */
  quota: QuotaResult | null;
  /** Gives the quota unit back (idempotent); a no-op for signed-in users. */
  refund: () => Promise<void>;
  /** The stream's effective cap in µUSD: its hold, what the meter stops at. */
  capMicroUsd: number;
  /** `max_tokens` for the upstream, from the effective cap. */
  maxTokens: number;
  /** The hold its ledger record settles. */
  hold: HoldTicket;
  /** When the quota unit was spent (what `refund` gives back to), or null when none was. */
  quotaSpentAt: number | null;
  /**
   * Undoes the whole admission (rate-limit hits, quota unit, hold) for a stream that never ran
   * (409 `stream_exists`); after the response, retried like a failed admission's cancel.
   */
  cancel: () => Promise<void>;
}

/** Seconds to wait when live holds (not settled spend) fill a budget: holds end with their streams. */
export const BUDGET_HELD_RETRY_S = 10;

const BUDGET_DETAIL: Record<BudgetName, string> = {
  user_daily: "your daily spend budget is used up",
  anon_daily: "the daily spend budget of this anonymous session is used up; sign in for more",
  anon_hourly: "the hourly spend budget for anonymous use of this service is exhausted",
  global_hourly: "the hourly spend budget of this service is exhausted",
};

/** The refusal of a budget: 429 for the caller's own, 503 for a shared one, never holding anything. */
function budgetRefusal(
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
function warnExhaustedOnce(log: Logger, budget: BudgetName, endsAt: number): void {
  const key = `${budget}:${endsAt}`;
  if (warnedExhausted.has(key)) return;
  if (warnedExhausted.size >= 64) warnedExhausted.clear();
  warnedExhausted.add(key);
  log.warn("budget_exhausted", { budget, ends_at: new Date(endsAt).toISOString() });
}

/** Milliseconds as the whole seconds of a Retry-After or RateLimit-Reset (at least 1). */
export const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

/** The RateLimit-* headers (draft-ietf-httpapi-ratelimit-headers, separate fields) for the tightest window. */
export function rateLimitHeaders(
  windows: WindowResult[],
  now = Date.now(),
): Record<string, string> {
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

/**
 * The minting gate: one anonymous session more from this address (its /64 and, for IPv6, its
 * /48), or 429 `too_many_sessions`. A refused address is remembered by the isolate until its
 * Retry-After, so a flood of mints costs the store one call. Returns the RateLimit-* headers.
 */
export async function passMintLimit(c: Context<AppEnv>): Promise<Record<string, string>> {
  const [config, ip] = [c.get("config"), c.get("clientIp")];
  const now = Date.now();
  const wide = wideOf(ip);
  const keys = [`mint:ip:${ip}`, wide && `mint:${wide}`];
  const denials = denyCacheFor(config);
  denials.refuseIfDenied(keys, now);
  const window = await storeFor(config, c.env).hitSessionMint(`ip:${ip}`, wide);
  const detail = `at most ${window.limit} anonymous sessions per hour from one address`;
  try {
    return passWindow(window, now, "too_many_sessions", detail);
  } catch (e) {
    const byWide = window.limit !== config.anonSessionsPerIpHourly;
    const key = byWide ? keys[1] : keys[0];
    const retryAt = window.retryAt ?? window.reset;
    if (key)
      denials.remember(key, retryAt, "too_many_sessions", detail, rateLimitHeaders([window], now));
    throw e;
  }
}

/** The store key of the /48 an IPv6 client's /64 lies in; null for IPv4. */
export function wideOf(ip: string): string | null {
  const wide = wideIpKey(ip);
  return wide ? `ip:${wide}` : null;
}

/** Sets `clientIp` from CF-Connecting-IP only; without one, production refuses the request. */
export const clientIp = createMiddleware<AppEnv>(async function clientIp(c, next) {
  const key = ipKey(c.req.header("CF-Connecting-IP"));
  if (key) c.set("clientIp", key);
  else if (c.get("config").environment === "production") {
    throw new AppError(
      "limits_unavailable",
      "the client address is unknown, so limits cannot apply",
      { retryAfter: 60 },
    );
  } else c.set("clientIp", DEV_LOOPBACK);
  await next();
});

/** Pauses between the attempts to cancel a failed admission (the first goes at once). */
const CANCEL_RETRY_MS = [250, 1_000];

/**
 * Cancels a failed admission after the response. A cancel is idempotent, so a lost or late one
 * is simply sent again; only when every attempt failed is it logged (and what the store may have
 * committed stays counted until its window passes).
 */
async function cancelAdmission(store: LimitStore, admission: AdmissionRequest, log: Logger) {
  try {
    await withRetries(() => store.cancelAdmission(admission), CANCEL_RETRY_MS);
  } catch (e) {
    log.warn("admission_cancel_failed", { cause: describeError(e) });
  }
}

/**
 * Counts the request against the user's and the IP's windows and spends anonymous quota: one
 * store round trip, refused in contract order (rate limits first, then quotas).
 */
export const enforceLimits = createMiddleware<AppEnv>(async function enforceLimits(c, next) {
  // c.get, not c.var: hono builds a fresh object of every variable on each c.var read.
  const [principal, ip, config] = [c.get("principal"), c.get("clientIp"), c.get("config")];
  const input = c.get("streamInput");
  const store = storeFor(config, c.env);
  const now = Date.now();
  const denials = denyCacheFor(config);
  const ipKeys = [`ip:${ip}`, wideOf(ip)];
  // A caller refused a moment ago is refused again here, without a store round trip.
  denials.refuseIfDenied([principal.key, ...ipKeys], now);
  const started = performance.now();
  const admission: AdmissionRequest = {
    id: crypto.randomUUID(),
    userKey: principal.key,
    ipKey: ipKeys[0] as string,
    wideIpKey: ipKeys[1] ?? null,
    at: now,
    anonymous: principal.isAnonymous,
    price: holdPrice(input.model, input.prompt, input.capMicroUsd, input.maxTokens, input.tooling),
  };
  let decided: Admission;
  try {
    decided = await store.admit(admission);
  } catch (e) {
    // No answer (a timeout, a lost connection) does not mean nothing was counted: the store may
    // still commit it. The request is refused with 503, so whatever it counted is undone.
    c.executionCtx.waitUntil(cancelAdmission(store, admission, c.get("log")));
    throw e;
  }
  const { user, ip: ipWindow, quota, budget } = decided;
  if (decided.pending) c.executionCtx.waitUntil(decided.pending.catch(() => {}));
  annotate(c.req.raw, { store_ms: Math.round(performance.now() - started) });
  const headers = rateLimitHeaders([user, ipWindow], now);
  /** Refuses, and remembers the refusal for `keys` until the same request would pass. */
  const refuse = (keys: (string | null)[], retryAt: number, code: ErrorCode, detail: string) => {
    for (const key of keys) if (key) denials.remember(key, retryAt, code, detail, headers);
    return new AppError(code, detail, { retryAfter: (retryAt - now) / 1000, headers });
  };
  const refused = [user, ipWindow].find((w) => !w.success);
  if (refused) {
    const byUser = refused === user;
    const spec = byUser ? config.rateLimitUser : config.rateLimitIp;
    // The /48 of an IPv6 address has a wider limit of its own.
    const wide = !byUser && refused.limit !== spec.limit;
    const which = byUser ? "per-user" : wide ? "per-IP (/48)" : "per-IP";
    throw refuse(
      byUser ? [admission.userKey] : wide ? [admission.wideIpKey] : [admission.ipKey],
      refused.retryAt ?? refused.reset,
      "rate_limited",
      `${which} rate limit reached: ${refused.limit} requests per ${spec.windowMs / 1000} s`,
    );
  }
  if (quota && !quota.success) {
    const hourly = quota.exhausted === "hourly";
    throw refuse(
      [admission.userKey],
      // The total quota never comes back; an hour is an honest "not before".
      hourly ? (quota.hourly.retryAt ?? quota.hourly.reset) : now + 3_600_000,
      "quota_exceeded",
      hourly
        ? `anonymous hourly quota reached: ${config.anonQuotaHourly} streams per hour`
        : `anonymous total quota reached: ${config.anonQuotaTotal} streams; sign in to continue`,
    );
  }

  if (!budget) throw new Error("the store admitted a stream without deciding its budgets");
  if (!budget.ok) {
    annotate(c.req.raw, { budget_refused: budget.budget });
    if (isShared(budget.budget)) warnExhaustedOnce(c.get("log"), budget.budget, budget.endsAt);
    throw budgetRefusal(budget, now, headers);
  }

  let refunded = false;
  c.set("limits", {
    headers,
    quota,
    capMicroUsd: budget.ticket.microUsd,
    maxTokens: budget.maxTokens,
    hold: budget.ticket,
    quotaSpentAt: quota ? now : null,
    cancel: () => cancelAdmission(store, admission, c.get("log")),
    refund: async () => {
      if (!quota || refunded) return;
      refunded = true;
      await store.refundQuota(principal.key, now);
    },
  });
  await next();
});
