/** @module The operator page: asks for the tokens, then charts /api/v1/metrics and the ledger's spend. */
import "uplot/dist/uPlot.min.css";
import "./ops.css";
import {
  ApiError,
  clearTokens,
  fetchMetrics,
  fetchSpend,
  loadTokens,
  type Metrics,
  type MetricWindow,
  type SpendRow,
  saveTokens,
  type Tokens,
} from "./api";
import { type BarData, drawBars, drawEmpty } from "./charts";

const HOUR = "#1f6feb";
const DAY = "#9ec5fe";
const REFRESH_MS = 15_000;
const usd = (v: number) => (v === 0 ? "0" : v < 0.01 ? `$${v.toFixed(6)}` : `$${v.toFixed(4)}`);
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** The hour (narrow, dark) over the day (wide, light) for each category. */
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
        color: DAY,
        width: 0.8,
      },
      {
        label: "last hour",
        values: categories.map((c) => pick(m.windows.hour, c)),
        color: HOUR,
        width: 0.4,
      },
    ],
  };
}

const keysOf = (m: Metrics, f: (w: MetricWindow) => Record<string, number>) =>
  [...new Set([...Object.keys(f(m.windows.hour)), ...Object.keys(f(m.windows.day))])].sort();

function drawMetrics(m: Metrics): void {
  drawBars(
    $("chart-requests"),
    hourAndDay(
      ["all", ...keysOf(m, (w) => w.by_status)],
      (w, c) => (c === "all" ? w.requests : (w.by_status[c] ?? 0)),
      m,
    ),
  );
  const codes = keysOf(m, (w) => w.by_error_code);
  if (codes.length)
    drawBars(
      $("chart-errors"),
      hourAndDay(codes, (w, c) => w.by_error_code[c] ?? 0, m),
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
  );
  drawBars(
    $("chart-spend"),
    {
      categories: ["last hour", "last day"],
      series: [
        {
          label: "cost (USD)",
          values: [m.windows.hour.cost_usd, m.windows.day.cost_usd],
          color: HOUR,
          width: 0.6,
        },
      ],
    },
    usd,
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
        {
          label: "limit",
          values: budgets.map(([, b]) => b.limit_usd),
          color: "#d0d7de",
          width: 0.8,
        },
        {
          label: "spent + held",
          values: budgets.map(([, b]) => b.spent_usd + b.held_usd),
          color: DAY,
          width: 0.55,
        },
        { label: "spent", values: budgets.map(([, b]) => b.spent_usd), color: HOUR, width: 0.3 },
      ],
    },
    usd,
  );
  $("budgets-refused").textContent = budgets
    .map(([n, b]) => `${n}: ${b.refused} refused`)
    .join(" · ");
}

const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

function drawLedger(days: SpendRow[], from: number, top: SpendRow[]): void {
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
          color: HOUR,
          width: 0.7,
        },
      ],
    },
    usd,
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
}

function status(text: string, bad = false): void {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("bad", bad);
}

let timer: number | undefined;

async function refresh(t: Tokens): Promise<void> {
  const now = Date.now();
  const from = now - 29 * 86_400_000;
  const problems: string[] = [];
  const [metrics, ledger] = await Promise.allSettled([
    fetchMetrics(t),
    Promise.all([
      fetchSpend(t, utcDay(from), utcDay(now), "day"),
      fetchSpend(t, utcDay(now), utcDay(now), "user", 10),
    ]),
  ]);
  if (metrics.status === "fulfilled") drawMetrics(metrics.value);
  else
    problems.push(metrics.reason instanceof ApiError ? metrics.reason.message : "metrics failed");
  if (ledger.status === "fulfilled") drawLedger(ledger.value[0], from, ledger.value[1]);
  else problems.push(ledger.reason instanceof ApiError ? ledger.reason.message : "ledger failed");
  document.body.dataset.loaded = String(Date.now());
  if (problems.length) status(problems.join("; "), true);
  else
    status(
      `Updated ${new Date().toLocaleTimeString()} · store: ${metrics.status === "fulfilled" ? metrics.value.store : "?"}`,
    );
}

function start(t: Tokens): void {
  $("login").hidden = true;
  $("board").hidden = false;
  $("board-tools").hidden = false;
  void refresh(t);
  window.clearInterval(timer);
  timer = window.setInterval(() => {
    if (($("auto") as HTMLInputElement).checked && !document.hidden) void refresh(t);
  }, REFRESH_MS);
  $("refresh").onclick = () => void refresh(t);
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  const metrics = ($("metrics-token") as HTMLInputElement).value.trim();
  const admin = ($("admin-token") as HTMLInputElement).value.trim() || metrics;
  if (!metrics) return;
  const t = { metrics, admin };
  saveTokens(t);
  start(t);
});
$("forget").addEventListener("click", () => {
  clearTokens();
  window.clearInterval(timer);
  location.reload();
});

const saved = loadTokens();
if (saved) start(saved);
