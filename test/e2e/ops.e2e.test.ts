/**
 * @module Browser test of the operator page (/magic/ops/): Debian's Chromium (playwright-core)
 * against `wrangler dev` with some traffic; the charts show what /api/v1/metrics and the ledger say.
 */
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ARTIFACTS, withChromium } from "./browser";
import { type DevServer, startWranglerDev } from "./dev-server";

const METRICS_TOKEN = "ops-e2e-metrics-token-0123456789abcdef";
const ADMIN_TOKEN = "ops-e2e-admin-token-0123456789abcdef-01";
const STREAMS = 3;

let dev: DevServer;
let browser: Browser;
let user = "";
let costMicroUsd = 0;

interface BarData {
  categories: string[];
  series: { label: string; values: number[] }[];
}

beforeAll(async () => {
  [dev, browser] = await withChromium(
    startWranglerDev({ METRICS_TOKEN, ADMIN_TOKEN, METRICS_FLUSH_MS: "0" }),
  );
  // Some traffic: streams, two refused tokens, one bad input.
  const minted = await fetch(`${dev.url}/api/v1/anon_session`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: "{}",
  });
  const { token } = (await minted.json()) as { token: string };
  const auth = { Authorization: `Bearer ${token}` };
  for (let i = 0; i < STREAMS; i++) {
    const res = await fetch(
      `${dev.url}/api/v1/stream?message=${encodeURIComponent(`Hello ${i}`)}`,
      {
        headers: auth,
      },
    );
    const text = await res.text();
    const done = text.split("\n\n").find((f) => f.includes("event: done"));
    const data = JSON.parse(done?.split("data: ")[1] ?? "{}") as { cost_usd: number };
    costMicroUsd += Math.round(data.cost_usd * 1e6);
  }
  for (let i = 0; i < 2; i++) {
    await fetch(`${dev.url}/api/v1/stream?message=hi`, { headers: { Authorization: "Bearer x" } });
  }
  await fetch(`${dev.url}/api/v1/stream?message=`, { headers: auth });
  const usage = (await (await fetch(`${dev.url}/api/v1/usage`, { headers: auth })).json()) as {
    user_id: string;
  };
  user = `anonymous:${usage.user_id}`;
  // The records go through the queue: wait (bounded) until all are in D1.
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`${dev.url}/api/v1/admin/ledger?user=${encodeURIComponent(user)}`, {
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    if (((await res.json()) as { records: unknown[] }).records.length === STREAMS) break;
    await new Promise((r) => setTimeout(r, 200));
  }
}, 90_000);

afterAll(async () => {
  await browser?.close().catch(() => {});
  await dev?.stop();
});

describe("the operator page", () => {
  it("charts the counts the metrics say, and the ledger's spend and top spender", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`console: ${m.text()}`);
    });
    await page.goto(`${dev.url}/magic/ops/`);
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
    };
    await page.waitForSelector("body[data-loaded]");
    expect(await page.locator("#login").isHidden()).toBe(true);
    const chart = async (id: string) =>
      JSON.parse((await page.getAttribute(`#${id}`, "data-values")) ?? "null") as BarData;
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
    expect(Math.round((ledger.series[0]?.values.at(-1) ?? 0) * 1e6)).toBe(costMicroUsd);
    const top = await page
      .locator("#top-spenders tbody tr")
      .first()
      .locator("td")
      .allTextContents();
    expect(top.slice(0, 2)).toEqual([user, String(STREAMS)]);
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
    await other.goto(`${dev.url}/magic/ops/`);
    expect(await other.locator("#login").isVisible()).toBe(true);
    await context.close();
  });

  it("charts the shared budgets once the metrics report them", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const budgets = {
      anon_hourly: { limit_usd: 2, spent_usd: 0.5, held_usd: 0.25, refused: 3 },
      global_hourly: { limit_usd: 20, spent_usd: 1.5, held_usd: 0.5, refused: 0 },
    };
    // The server's own answer, with the `budgets` object a budget-aware server adds.
    await page.route("**/api/v1/metrics", async (route) => {
      const res = await route.fetch();
      await route.fulfill({ response: res, json: { ...(await res.json()), budgets } });
    });
    await page.goto(`${dev.url}/magic/ops/`);
    expect(await page.locator("#budgets").isHidden()).toBe(true);
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
      "anon_hourly: 3 refused · global_hourly: 0 refused",
    );
    await context.close();
  });

  it("says plainly when a token is refused, and is served with the strict CSP", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const res = await page.goto(`${dev.url}/magic/ops/`);
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
