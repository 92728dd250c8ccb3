/**
 * @module Browser test of the operator page (/magic/ops/): Debian's Chromium (playwright-core)
 * against `wrangler dev` with some traffic; the charts show what /api/v1/metrics and the ledger say.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ARTIFACTS } from "./browser";
import { ADMIN_TOKEN, type BarData, chartData, METRICS_TOKEN, ROUTE, useOpsRig } from "./ops-setup";

const STREAMS = 3;
const rig = useOpsRig(STREAMS);

describe("the operator page", () => {
  it("charts the counts the metrics say, and the ledger's spend and top spender", async () => {
    const context = await rig.browser().newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`console: ${m.text()}`);
    });
    await page.goto(`${rig.dev().url}/magic/ops/`);
    expect(await page.locator("#board").isHidden()).toBe(true);
    await page.fill("#metrics-token", METRICS_TOKEN);
    await page.fill("#admin-token", ADMIN_TOKEN);
    const metricsResponse = page.waitForResponse((r) => r.url().endsWith("/api/v1/metrics"));
    await page.click("button[type=submit]");
    const metrics = (await (await metricsResponse).json()) as {
      windows: Record<
        "hour" | "day",
        {
          requests: number;
          by_status: Record<string, number>;
          by_error_code: Record<string, number>;
          streams: { started: number; finished: number };
          cost_usd: number;
          store_latency_ms: { buckets: { le: string; count: number }[] };
        }
      >;
      budgets: Record<string, { limit_usd: number; refused: Record<"hour" | "day", number> }>;
    };
    await page.waitForSelector("body[data-loaded]");
    expect(await page.locator("#login").isHidden()).toBe(true);
    // The server's shared budgets (on by default), their refusals as the metrics count them.
    const budgetNames = Object.keys(metrics.budgets);
    expect(budgetNames.length).toBeGreaterThan(0);
    expect((await chartData(page, "chart-budgets")).categories).toEqual(budgetNames);
    expect(await page.textContent("#budgets-refused")).toBe(
      budgetNames
        .map((n) => {
          const r = metrics.budgets[n]?.refused;
          return `${n}: ${r?.hour} refused in the last hour, ${r?.day} in the last day`;
        })
        .join(" · "),
    );
    const chart = (id: string) => chartData(page, id);
    const value = (d: BarData, category: string, window: "hour" | "day") =>
      d.series.find((s) => s.label === `last ${window}`)?.values[d.categories.indexOf(category)];

    const requests = await chart("chart-requests");
    const streams = await chart("chart-streams");
    const errors = await chart("chart-errors");
    const store = await chart("chart-store");
    for (const w of ["hour", "day"] as const) {
      const m = metrics.windows[w];
      expect(value(requests, "all", w)).toBe(m.requests);
      for (const [status, n] of Object.entries(m.by_status))
        expect(value(requests, status, w)).toBe(n);
      expect(value(streams, "started", w)).toBe(STREAMS);
      expect(value(streams, "finished", w)).toBe(m.streams.finished);
      expect(value(errors, "unauthorized", w)).toBe(2);
      expect(value(errors, "invalid_input", w)).toBe(1);
      expect(errors.categories).toEqual(Object.keys(metrics.windows.day.by_error_code).sort());
      expect(store.series.find((s) => s.label === `last ${w}`)?.values).toEqual(
        m.store_latency_ms.buckets.map((b) => b.count),
      );
    }
    const spend = await chart("chart-spend");
    expect(spend.series[0]?.values).toEqual([
      metrics.windows.hour.cost_usd,
      metrics.windows.day.cost_usd,
    ]);
    // The ledger: today's bar is the sum of the streams' costs, and the caller tops today's spenders.
    const ledger = await chart("chart-ledger");
    expect(ledger.categories.at(-1)).toBe(new Date().toISOString().slice(5, 10));
    expect(Math.round((ledger.series[0]?.values.at(-1) ?? 0) * 1e6)).toBe(rig.costMicroUsd());
    const top = await page
      .locator("#top-spenders tbody tr")
      .first()
      .locator("td")
      .allTextContents();
    expect(top.slice(0, 2)).toEqual([rig.user(), String(STREAMS)]);
    // The top spender's latest streams name the route's target that answered: the fallback.
    expect(await page.textContent("#streams-whose")).toContain(rig.user());
    const rows = page.locator("#streams tbody tr");
    expect(await rows.count()).toBe(STREAMS);
    const headers = await page.locator("#streams thead th").allTextContents();
    for (const row of await rows.all()) {
      const cells = await row.locator("td").allTextContents();
      const cell = (h: string) => cells[headers.indexOf(h)];
      expect(cell("model")).toBe(ROUTE.model);
      expect(cell("provider")).toBe(ROUTE.provider);
      expect(cell("upstream model")).toBe(ROUTE.upstreamModel);
      expect(cell("finish")).toBe("stop");
    }
    expect(await page.locator("#streams-empty").isHidden()).toBe(true);
    // The tables under the charts say the same, and uPlot drew a canvas for each chart.
    expect(await page.locator("#chart-errors table.figures tbody tr").allTextContents()).toEqual(
      errors.categories.map((c) => `${c}${value(errors, c, "day")}${value(errors, c, "hour")}`),
    );
    expect(await page.locator("#board canvas").count()).toBeGreaterThanOrEqual(7);

    await page.screenshot({ path: join(ARTIFACTS, "ops-page.png"), fullPage: true });
    expect(problems).toEqual([]);

    // The tokens live in this tab's sessionStorage only: a reload keeps the board, a new tab asks.
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    await page.reload();
    await page.waitForSelector("body[data-loaded]");
    expect(await page.locator("#board").isVisible()).toBe(true);
    const other = await context.newPage();
    await other.goto(`${rig.dev().url}/magic/ops/`);
    expect(await other.locator("#login").isVisible()).toBe(true);
    await context.close();
  });

  it("charts the shared budgets and says how many requests each refused per window", async () => {
    const context = await rig.browser().newContext();
    const page = await context.newPage();
    // The server's own answer, its budgets' figures changed but not their shape: a page that
    // misreads the shape shows it here (it printed "[object Object] refused" once).
    await page.route("**/api/v1/metrics", async (route) => {
      const res = await route.fetch();
      const json = (await res.json()) as {
        budgets: Record<string, { refused: Record<string, number> } & Record<string, unknown>>;
      };
      const figures: Record<string, [number, number, number, number, number]> = {
        anon_hourly: [2, 0.5, 0.25, 3, 7],
        global_hourly: [20, 1.5, 0.5, 0, 0],
      };
      for (const [name, [limit, spent, held, hour, day]] of Object.entries(figures)) {
        const b = json.budgets[name];
        if (!b) throw new Error(`the server reports no ${name} budget`);
        Object.assign(b, { limit_usd: limit, spent_usd: spent, held_usd: held });
        Object.assign(b.refused, { minute: 0, hour, day });
      }
      await route.fulfill({ response: res, json });
    });
    await page.goto(`${rig.dev().url}/magic/ops/`);
    await page.fill("#metrics-token", METRICS_TOKEN);
    await page.fill("#admin-token", ADMIN_TOKEN);
    await page.click("button[type=submit]");
    await page.waitForSelector("body[data-loaded]");
    expect(await page.locator("#budgets").isVisible()).toBe(true);
    const data = JSON.parse(
      (await page.getAttribute("#chart-budgets", "data-values")) ?? "null",
    ) as BarData;
    expect(data.categories).toEqual(["anon_hourly", "global_hourly"]);
    expect(data.series.map((s) => [s.label, s.values])).toEqual([
      ["limit", [2, 20]],
      ["spent + held", [0.75, 2]],
      ["spent", [0.5, 1.5]],
    ]);
    expect(await page.textContent("#budgets-refused")).toBe(
      "anon_hourly: 3 refused in the last hour, 7 in the last day · global_hourly: 0 refused in the last hour, 0 in the last day",
    );
    await context.close();
  });

  it("says plainly when a token is refused, and is served with the strict CSP", async () => {
    const context = await rig.browser().newContext();
    const page = await context.newPage();
    const res = await page.goto(`${rig.dev().url}/magic/ops/`);
    const csp = res?.headers()["content-security-policy"] ?? "";
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval/);
    await page.fill("#metrics-token", "wrong-token");
    await page.fill("#admin-token", ADMIN_TOKEN);
    await page.click("button[type=submit]");
    await page.waitForSelector("body[data-loaded]");
    expect(await page.textContent("#status")).toContain("/api/v1/metrics: the token was refused");
    await context.close();
  });
});
