/** @module GET /api/v1/metrics: counters for operators, as JSON or Prometheus text. */
import { Hono } from "hono";
import type { AppEnv } from "../env";
import { AppError } from "../errors";
import { BUDGET_NAMES } from "../limits/budget";
import { storeFor } from "../limits/select-store";
import { budgetPrometheus, budgetSummary } from "../observe/budget-metrics";
import { prometheus, summarise } from "../observe/metrics";
import { providerPrometheus, providerSummary } from "../observe/provider-metrics";

const encoder = new TextEncoder();

/** Compares secrets in constant time (length is not secret: it is fixed by configuration). */
function sameSecret(given: string, expected: string): boolean {
  const a = encoder.encode(given);
  const b = encoder.encode(expected);
  return a.byteLength === b.byteLength && crypto.subtle.timingSafeEqual(a, b);
}

/** The metrics route: 404 without METRICS_TOKEN, 401 with a wrong one. */
export const metricsRoutes = new Hono<AppEnv>().get("/", async (c) => {
  const { config } = c.var;
  if (!config.metricsToken) throw new AppError("not_found", "no such endpoint");
  const given = /^Bearer +(\S{1,512})$/i.exec(c.req.header("Authorization") ?? "")?.[1];
  if (!given || !sameSecret(given, config.metricsToken)) {
    throw new AppError("unauthorized", "a valid metrics token is required", {
      headers: {
        "WWW-Authenticate": given ? 'Bearer error="invalid_token"' : 'Bearer realm="metrics"',
      },
    });
  }
  const store = storeFor(config, c.env);
  const now = Date.now();
  const [windows, budgets] = await Promise.all([store.readMetrics(now), store.sharedBudgets(now)]);
  c.header("Cache-Control", "no-store");
  if (/\btext\/plain\b/i.test(c.req.header("Accept") ?? "")) {
    return c.text(
      prometheus(windows) +
        budgetPrometheus(budgets, windows, [...BUDGET_NAMES]) +
        providerPrometheus(windows),
      200,
      {
        "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
      },
    );
  }
  return c.json({
    store: store.kind,
    generated_at: new Date().toISOString(),
    windows: {
      minute: summarise(windows.minute),
      hour: summarise(windows.hour),
      day: summarise(windows.day),
    },
    budgets: budgetSummary(budgets, windows),
    // Routes across providers: attempts, fallbacks and breaker skips per provider and window.
    providers: {
      minute: providerSummary(windows.minute),
      hour: providerSummary(windows.hour),
      day: providerSummary(windows.day),
    },
  });
});
