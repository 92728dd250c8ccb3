/** @module The limit stage: rate limits, anonymous quotas and budgets in one store round trip, in contract order. */
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../env";
import { AppError } from "../errors";
import { annotate } from "../observe/access-log";
import { describeError, type Logger } from "../observe/log";
import { withRetries } from "../retry";
import { holdPrice } from "../stream/cost";
import { wideOf } from "./address";
import { type HoldTicket, isShared } from "./budget";
import { denyCacheFor } from "./deny-cache";
import {
  budgetRefusal,
  quotaRefusal,
  rateLimitHeaders,
  rateRefusal,
  warnExhaustedOnce,
} from "./refusals";
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

/** What a request that passed carries on: its hold, its headers, and how to undo its admission. */
function grantOf(
  store: LimitStore,
  admission: AdmissionRequest,
  quota: QuotaResult | null,
  hold: HoldTicket,
  maxTokens: number,
  headers: Record<string, string>,
  log: Logger,
): LimitGrant {
  let refunded = false;
  return {
    headers,
    quota,
    capMicroUsd: hold.microUsd,
    maxTokens,
    hold,
    quotaSpentAt: quota ? admission.at : null,
    cancel: () => cancelAdmission(store, admission, log),
    refund: async () => {
      if (!quota || refunded) return;
      refunded = true;
      await store.refundQuota(admission.userKey, admission.at);
    },
  };
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
  const refused =
    rateRefusal(decided, admission, config) ?? quotaRefusal(quota, admission, config, now);
  if (refused) {
    // Remembered for its keys until the same request would pass.
    for (const key of refused.keys)
      if (key) denials.remember(key, refused.retryAt, refused.code, refused.detail, headers);
    throw new AppError(refused.code, refused.detail, {
      retryAfter: (refused.retryAt - now) / 1000,
      headers,
    });
  }

  if (!budget) throw new Error("the store admitted a stream without deciding its budgets");
  if (!budget.ok) {
    annotate(c.req.raw, { budget_refused: budget.budget });
    if (isShared(budget.budget)) warnExhaustedOnce(c.get("log"), budget.budget, budget.endsAt);
    throw budgetRefusal(budget, now, headers);
  }

  c.set(
    "limits",
    grantOf(store, admission, quota, budget.ticket, budget.maxTokens, headers, c.get("log")),
  );
  await next();
});
