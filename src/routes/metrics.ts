/** @module GET /api/v1/metrics: counters for operators, as JSON or Prometheus text. */
import { Hono } from "hono";
import { requireToken } from "../auth/operator-token";
import type { AppEnv } from "../env";
import { BUDGET_NAMES } from "../limits/budget";
import { storeFor } from "../limits/select-store";
import { budgetPrometheus, budgetSummary } from "../observe/budget-metrics";
import { prometheus, summarise } from "../observe/metrics";
import { providerPrometheus, providerSummary } from "../observe/provider-metrics";

/** The metrics route: 404 without METRICS_TOKEN, 401 with a wrong one. */
export const metricsRoutes = new Hono<AppEnv>().get(
  "/",
  requireToken("metrics", (config) => config.metricsToken),
  async (c) => {
    const { config } = c.var;
    const store = storeFor(config, c.env);
    const now = Date.now();
    const [windows, budgets] = await Promise.all([
      store.readMetrics(now),
      store.sharedBudgets(now),
    ]);
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
  },
);
