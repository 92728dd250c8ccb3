/** @module Bar charts with uPlot: categories on x, nested bars per window, and the figures as a table. */
import uPlot from "uplot";

/** One series: its label, a value per category, its colour and its bar width (0..1 of a slot). */
export interface BarSeries {
  label: string;
  values: number[];
  color: string;
  width: number;
}

/** What a chart shows; also written to the figure's `data-values` (for people and tests alike). */
export interface BarData {
  categories: string[];
  series: BarSeries[];
}

const charts = new WeakMap<HTMLElement, uPlot>();

function tableOf(data: BarData, format: (v: number) => string): HTMLTableElement {
  const table = document.createElement("table");
  table.className = "figures";
  const head = table.createTHead().insertRow();
  for (const h of ["", ...data.series.map((s) => s.label)]) {
    const th = document.createElement("th");
    th.textContent = h;
    th.scope = "col";
    head.append(th);
  }
  const body = table.createTBody();
  data.categories.forEach((c, i) => {
    const row = body.insertRow();
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = c;
    row.append(th);
    for (const s of data.series) row.insertCell().textContent = format(s.values[i] ?? 0);
  });
  return table;
}

/**
 * Draws `data` into `figure` (replacing what was there): a uPlot bar chart, its legend, and a
 * table of the same figures. Bars of a category share its slot, widest first, so a window that
 * contains another (the day holds the hour) reads as nested bars.
 */
export function drawBars(
  figure: HTMLElement,
  data: BarData,
  format: (v: number) => string = String,
): void {
  figure.dataset.values = JSON.stringify(data);
  const plot = figure.querySelector<HTMLElement>(".plot");
  const old = figure.querySelector("table.figures");
  if (!plot) return;
  charts.get(figure)?.destroy();
  plot.replaceChildren();
  const xs = data.categories.map((_, i) => i);
  const max = Math.max(0, ...data.series.flatMap((s) => s.values)) || 1;
  const width = Math.max(260, plot.clientWidth || 420);
  // Every `step`-th category counted from the last (the newest day) is labelled, so labels
  // never overlap (about 90 px each).
  const step = Math.max(1, Math.ceil(xs.length / ((width - 60) / 90)));
  const opts: uPlot.Options = {
    width,
    height: 200,
    legend: { show: true, live: false },
    cursor: { show: false },
    scales: {
      x: { time: false, range: [-0.5, Math.max(0.5, xs.length - 0.5)] },
      y: { range: [0, max * 1.1] },
    },
    axes: [
      {
        splits: () => xs,
        values: (_u, splits) =>
          splits.map((i) => ((xs.length - 1 - i) % step === 0 ? (data.categories[i] ?? "") : "")),
        gap: 4,
        size: 40,
      },
      { values: (_u, splits) => splits.map(format), size: 80 },
    ],
    series: [
      {},
      ...data.series.map((s) => ({
        label: s.label,
        stroke: s.color,
        fill: s.color,
        width: 0,
        points: { show: false },
        // The pixel cap keeps the widths' ratio, so nested bars stay nested on wide slots.
        paths: uPlot.paths.bars?.({ size: [s.width, 120 * s.width], align: 0 }),
      })),
    ],
  };
  const u = new uPlot(opts, [xs, ...data.series.map((s) => s.values)], plot);
  charts.set(figure, u);
  const table = tableOf(data, format);
  if (old) old.replaceWith(table);
  else if (data.categories.length > 8) {
    // Long tables (histograms, 30 days) fold away under the chart.
    const details = document.createElement("details");
    details.append(
      Object.assign(document.createElement("summary"), { textContent: "figures" }),
      table,
    );
    figure.append(details);
  } else figure.append(table);
}

/** Shows `text` instead of a chart (nothing to draw yet). */
export function drawEmpty(figure: HTMLElement, text: string): void {
  charts.get(figure)?.destroy();
  charts.delete(figure);
  figure.dataset.values = JSON.stringify({ categories: [], series: [] });
  figure.querySelector(".plot")?.replaceChildren(
    Object.assign(document.createElement("p"), {
      className: "empty",
      textContent: text,
    }),
  );
  figure.querySelector("details")?.remove();
  figure.querySelector("table.figures")?.remove();
}
