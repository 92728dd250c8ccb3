/** @module The board's charts: what /api/v1/metrics and the ledger say, drawn into the figures. */
import type { Metrics, MetricWindow, SpendRow } from "./api";
import { type BarData, drawBars, drawEmpty } from "./charts";
import { watchScroller } from "./scrollers";

const usd = (v: number) => (v === 0 ? "0" : v < 0.01 ? `$${v.toFixed(6)}` : `$${v.toFixed(4)}`);
const $ = (id: string) => document.getElementById(id) as HTMLElement;

/** The hour (narrow) over the day (wide) for each category. */
function hourAndDay(
  categories: string[],
  pick: (w: MetricWindow, c: string) => number,
  m: Metrics,
): BarData {
  return {
    categories,
    series: [
      {
        label: "last day",
        values: categories.map((c) => pick(m.windows.day, c)),
        color: "day",
        width: 0.8,
      },
      {
        label: "last hour",
        values: categories.map((c) => pick(m.windows.hour, c)),
        color: "hour",
        width: 0.4,
      },
    ],
  };
}

const keysOf = (m: Metrics, f: (w: MetricWindow) => Record<string, number>) =>
  [...new Set([...Object.keys(f(m.windows.hour)), ...Object.keys(f(m.windows.day))])].sort();

/** Draws the counters, the histograms and the budgets of one metrics answer. */
export function drawMetrics(m: Metrics): void {
  drawBars(
    $("chart-requests"),
    hourAndDay(
      ["all", ...keysOf(m, (w) => w.by_status)],
      (w, c) => (c === "all" ? w.requests : (w.by_status[c] ?? 0)),
      m,
    ),
    { dimension: "status" },
  );
  const codes = keysOf(m, (w) => w.by_error_code);
  if (codes.length)
    drawBars(
      $("chart-errors"),
      hourAndDay(codes, (w, c) => w.by_error_code[c] ?? 0, m),
      { dimension: "error code" },
    );
  else drawEmpty($("chart-errors"), "No errors in the last day.");
  const reasons = keysOf(m, (w) => w.streams.by_finish_reason);
  drawBars(
    $("chart-streams"),
    hourAndDay(
      ["started", "finished", ...reasons],
      (w, c) =>
        c === "started"
          ? w.streams.started
          : c === "finished"
            ? w.streams.finished
            : (w.streams.by_finish_reason[c] ?? 0),
      m,
    ),
    { dimension: "streams" },
  );
  drawBars(
    $("chart-spend"),
    {
      categories: ["last hour", "last day"],
      series: [
        {
          label: "cost (USD)",
          values: [m.windows.hour.cost_usd, m.windows.day.cost_usd],
          color: "hour",
          width: 0.6,
        },
      ],
    },
    { dimension: "window", format: usd },
  );
  drawBudgets(m);
  for (const [id, name] of [
    ["chart-store", "store_latency_ms"],
    ["chart-ttfb", "upstream_ttfb_ms"],
  ] as const) {
    // Bucket i is "≤ le" ms; the last one, above every bound, is "> <last bound>".
    const les = m.windows.day[name].buckets.map((b) => b.le);
    const top = les.filter((le) => le !== "inf").at(-1);
    const labels = les.map((le) => (le === "inf" ? `>${top}` : `≤${le}`));
    drawBars(
      $(id),
      hourAndDay(labels, (w, c) => w[name].buckets[labels.indexOf(c)]?.count ?? 0, m),
      { dimension: "ms" },
    );
    const h = m.windows.hour[name];
    $(`${id}-p`).textContent =
      h.count === 0
        ? "No samples in the last hour."
        : `Last hour: ${h.count} samples, p50 ≤ ${h.p50_ms} ms, p95 ≤ ${h.p95_ms} ms, p99 ≤ ${h.p99_ms} ms.`;
  }
}

/** The shared budgets, once /api/v1/metrics reports them: limit, spent plus held, spent. */
function drawBudgets(m: Metrics): void {
  const budgets = m.budgets ? Object.entries(m.budgets) : [];
  $("budgets").hidden = budgets.length === 0;
  if (!budgets.length) return;
  drawBars(
    $("chart-budgets"),
    {
      categories: budgets.map(([name]) => name),
      series: [
        { label: "limit", values: budgets.map(([, b]) => b.limit_usd), color: "limit", width: 0.8 },
        {
          label: "spent + held",
          values: budgets.map(([, b]) => b.spent_usd + b.held_usd),
          color: "day",
          width: 0.55,
        },
        { label: "spent", values: budgets.map(([, b]) => b.spent_usd), color: "hour", width: 0.3 },
      ],
    },
    { dimension: "budget", format: usd },
  );
  // `refused` counts per metrics window; the hour matches the chart, the day gives the trend.
  $("budgets-refused").textContent = budgets
    .map(
      ([n, b]) =>
        `${n}: ${b.refused.hour} refused in the last hour, ${b.refused.day} in the last day`,
    )
    .join(" · ");
}

/** A UTC day as YYYY-MM-DD. */
export const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** Draws the ledger's 30 days from `from` and today's top spenders. */
export function drawLedger(days: SpendRow[], from: number, top: SpendRow[]): void {
  const byDay = new Map(days.map((r) => [r.day, r.cost_usd]));
  const labels = Array.from({ length: 30 }, (_, i) => utcDay(from + i * 86_400_000));
  drawBars(
    $("chart-ledger"),
    {
      categories: labels.map((d) => d.slice(5)),
      series: [
        {
          label: "spend (USD)",
          values: labels.map((d) => byDay.get(d) ?? 0),
          color: "hour",
          width: 0.7,
        },
      ],
    },
    { dimension: "day (UTC)", format: usd },
  );
  const body = $("top-spenders").querySelector("tbody") as HTMLTableSectionElement;
  body.replaceChildren();
  for (const r of top) {
    const row = body.insertRow();
    for (const v of [
      r.user ?? "",
      String(r.streams),
      String(r.input_tokens + r.output_tokens),
      usd(r.cost_usd),
    ]) {
      row.insertCell().textContent = v;
    }
  }
  $("top-empty").hidden = top.length > 0;
  watchScroller($("top-spenders").parentElement as HTMLElement);
}
