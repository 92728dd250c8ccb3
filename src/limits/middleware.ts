/** @module The limit stage: rate limits, anonymous quotas and budgets in one store round trip, in contract order. */
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../env";
import { AppError, type ErrorCode } from "../errors";
import { annotate } from "../observe/access-log";
import { describeError, type Logger } from "../observe/log";
import { withRetries } from "../retry";
import { holdPrice } from "../stream/cost";
import { wideOf } from "./address";
import { type HoldTicket, isShared } from "./budget";
import { denyCacheFor } from "./deny-cache";
import { budgetRefusal, rateLimitHeaders, warnExhaustedOnce } from "./refusals";
import { storeFor } from "./select-store";
import type { Admission, AdmissionRequest, LimitStore, QuotaResult } from "./store";

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
  const now = store.now();
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
