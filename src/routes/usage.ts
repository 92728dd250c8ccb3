/** @module GET /api/v1/usage: the caller's own limits, quotas left and spend, without spending any. */
import { Hono } from "hono";
import { requireAuth } from "../auth/middleware";
import type { WindowSpec } from "../config";
import type { AppEnv } from "../env";
import { clientIp } from "../limits/middleware";
import { storeFor } from "../limits/select-store";
import type { WindowResult } from "../limits/store";

const view = (w: WindowResult, spec: WindowSpec) => ({
  limit: w.limit,
  remaining: w.remaining,
  window_seconds: spec.windowMs / 1000,
  reset: Math.ceil(w.reset / 1000),
});

/** The usage route. */
export const usageRoutes = new Hono<AppEnv>().get("/", requireAuth(), clientIp, async (c) => {
  const { config, principal } = c.var;
  const u = await storeFor(config, c.env).usage(
    principal.key,
    `ip:${c.var.clientIp}`,
    principal.isAnonymous,
  );
  const hour = { limit: config.anonQuotaHourly, windowMs: 3_600_000 };
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
  });
});
