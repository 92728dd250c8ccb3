/**
 * @module GET /api/v1/usage: the caller's own limits, quotas left and spend, without spending
 * any. Reads are limited per user in a window of their own (RATE_LIMIT_USAGE), apart from the
 * stream windows, so polling cannot cost a stream and a flood of reads is refused early.
 * `recent` is the caller's own latest ledger records from D1 (one indexed read, in parallel
 * with the store's), naming the provider and upstream model that answered each stream.
 */
import { Hono } from "hono";
import { requireAuth } from "../auth/middleware";
import type { WindowSpec } from "../config";
import type { AppEnv } from "../env";
import { D1LedgerBook } from "../ledger/d1-book";
import type { LedgerRecord } from "../ledger/record";
import { publicRecord } from "../ledger/wire";
import { clientIp } from "../limits/address";
import { passWindow } from "../limits/refusals";
import { storeFor } from "../limits/select-store";
import type { WindowResult } from "../limits/store";
import { describeError, type Logger } from "../observe/log";

/** How many of the caller's latest records `recent` shows. */
export const RECENT_RECORDS = 10;

/** A record as the caller sees it: the operator's view without the record id, the user key (it
 * is theirs) and the operator's extra figures. */
function recentView(r: LedgerRecord) {
  const {
    record_id: _id,
    user: _user,
    cost_micro_usd: _micro,
    ttft_ms: _ttft,
    duration_ms: _duration,
    ...view
  } = publicRecord(r);
  return view;
}

/**
 * The caller's latest records, newest first; null when no ledger is bound or D1 failed (the
 * limits and spend still answer: they come from the store, not from D1).
 */
async function recentOf(db: D1Database | undefined, key: string, log: Logger) {
  if (!db) return null;
  try {
    const page = await new D1LedgerBook(db).records(key, RECENT_RECORDS, null);
    return page.records.map(recentView);
  } catch (e) {
    log.warn("usage_recent_failed", { error: describeError(e) });
    return null;
  }
}

const view = (w: WindowResult, spec: WindowSpec) => ({
  limit: w.limit,
  remaining: w.remaining,
  window_seconds: spec.windowMs / 1000,
  reset: Math.ceil(w.reset / 1000),
});

/** The usage route. */
export const usageRoutes = new Hono<AppEnv>().get("/", requireAuth(), clientIp, async (c) => {
  const { config, principal } = c.var;
  const store = storeFor(config, c.env);
  const now = Date.now();
  const spec = config.rateLimitUsage;
  const headers = passWindow(
    await store.hitUsageRead(principal.key),
    now,
    "rate_limited",
    `usage reads limited to ${spec.limit} per ${spec.windowMs / 1000} s`,
  );
  // LEDGER_DB is optional at run time: a worker deployed without the ledger has none.
  const db = c.env.LEDGER_DB as D1Database | undefined;
  const [u, recent] = await Promise.all([
    store.usage(principal.key, `ip:${c.var.clientIp}`, principal.isAnonymous),
    recentOf(db, principal.key, c.var.log),
  ]);
  const hour = { limit: config.anonQuotaHourly, windowMs: 3_600_000 };
  for (const [k, v] of Object.entries(headers)) c.header(k, v);
  c.header("Cache-Control", "no-store");
  return c.json({
    user_id: principal.userId,
    anonymous: principal.isAnonymous,
    limits: { user: view(u.user, config.rateLimitUser), ip: view(u.ip, config.rateLimitIp) },
    quota: u.quota
      ? {
          hourly: view(u.quota.hourly, hour),
          total: { limit: u.quota.total.limit, remaining: u.quota.total.remaining },
        }
      : null,
    spend: { total_usd: u.spend.totalUsd, today_usd: u.spend.todayUsd, streams: u.spend.streams },
    // The caller's own budget only: the shared ones would reveal the service's traffic.
    budget: u.budget
      ? {
          name: u.budget.name,
          window: "day",
          limit_usd: u.budget.limit / 1e6,
          spent_usd: u.budget.spent / 1e6,
          held_usd: u.budget.held / 1e6,
          left_usd: Math.max(0, u.budget.limit - u.budget.spent - u.budget.held) / 1e6,
          reset: Math.ceil(u.budget.endsAt / 1000),
        }
      : null,
    recent,
  });
});
