/**
 * @module Bar charts with uPlot: categories on x, nested bars per window, a keyboard legend and
 * the figures as a table. Colours come from the page's CSS; a chart is drawn again when the
 * colour scheme flips or its box changes width (a canvas does neither by itself).
 */
import uPlot from "uplot";
import { clearFigures, showFigures } from "./figures";
import { clearLegend, showLegend } from "./legend";
import { type BarColor, onSchemeChange, paletteOf } from "./palette";

/** One series: its label, a value per category, its colour and its bar width (0..1 of a slot). */
export interface BarSeries {
  label: string;
  values: number[];
  color: BarColor;
  width: number;
}

/** What a chart shows; also written to the figure's `data-values` (for people and tests alike). */
export interface BarData {
  categories: string[];
  series: BarSeries[];
}

/** How a chart is labelled: the first column of its table ("status") and how values read. */
export interface BarText {
  dimension: string;
  format?: (v: number) => string;
}

interface Drawn {
  data: BarData;
  text: BarText;
  chart: uPlot;
  width: number;
}

const drawn = new Map<HTMLElement, Drawn>();
/** Series hidden through the legend, by figure and label: they stay hidden over refreshes. */
const hiddenSeries = new Map<HTMLElement, Set<string>>();
const HEIGHT = 200;

/** The chart's name: its figure's caption (the budgets chart is a box inside its figure). */
const captionOf = (box: HTMLElement) =>
  box.closest("figure")?.querySelector("figcaption")?.textContent?.trim() ?? "";

function plotOf(figure: HTMLElement): HTMLElement | null {
  return figure.querySelector<HTMLElement>(".plot");
}

function draw(figure: HTMLElement, data: BarData, text: BarText): void {
  const plot = plotOf(figure);
  if (!plot) return;
  const format = text.format ?? String;
  const palette = paletteOf(figure);
  const hidden = hiddenSeries.get(figure) ?? new Set<string>();
  hiddenSeries.set(figure, hidden);
  const colors = data.series.map((s) => palette.bars[s.color]);
  figure.dataset.values = JSON.stringify({
    categories: data.categories,
    series: data.series.map((s, i) => ({ ...s, color: colors[i] })),
  });
  drawn.get(figure)?.chart.destroy();
  plot.replaceChildren();
  const xs = data.categories.map((_, i) => i);
  const max = Math.max(0, ...data.series.flatMap((s) => s.values)) || 1;
  // The box's own width, never more: a wider canvas would overflow the card on a phone.
  const width = Math.max(120, plot.clientWidth || 420);
  // Every `step`-th category counted from the last (the newest day) is labelled, so labels
  // never overlap (about 90 px each).
  const step = Math.max(1, Math.ceil(xs.length / ((width - 60) / 90)));
  const axis = {
    stroke: palette.text,
    grid: { stroke: palette.grid, width: 1 },
    ticks: { stroke: palette.grid, width: 1 },
  };
  const opts: uPlot.Options = {
    width,
    height: HEIGHT,
    legend: { show: false },
    cursor: { show: false },
    scales: {
      x: { time: false, range: [-0.5, Math.max(0.5, xs.length - 0.5)] },
      y: { range: [0, max * 1.1] },
    },
    axes: [
      {
        ...axis,
        splits: () => xs,
        values: (_u, splits) =>
          splits.map((i) => ((xs.length - 1 - i) % step === 0 ? (data.categories[i] ?? "") : "")),
        gap: 4,
        size: 40,
      },
      { ...axis, values: (_u, splits) => splits.map(format), size: 80 },
    ],
    series: [
      {},
      ...data.series.map((s, i) => {
        const color = colors[i] as string;
        // A limit is an outline around the bars it bounds: a filled third shade could not keep
        // 3:1 against both the card and the bars inside it.
        const outline = s.color === "limit";
        return {
          label: s.label,
          show: !hidden.has(s.label),
          stroke: color,
          fill: outline ? "transparent" : color,
          width: outline ? 2 : 0,
          points: { show: false },
          // The pixel cap keeps the widths' ratio, so nested bars stay nested on wide slots.
          paths: uPlot.paths.bars?.({ size: [s.width, 120 * s.width], align: 0 }),
        };
      }),
    ],
  };
  const chart = new uPlot(opts, [xs, ...data.series.map((s) => s.values)], plot);
  drawn.set(figure, { data, text, chart, width });
  const caption = captionOf(figure);
  // The canvas says nothing to a screen reader; the legend and the table below do.
  plot.setAttribute("role", "img");
  plot.setAttribute("aria-label", `Bar chart of ${caption}; the figures follow.`);
  showLegend(
    figure,
    caption,
    data.series.map((s, i) => ({
      label: s.label,
      color: colors[i] as string,
      outline: s.color === "limit",
    })),
    (i) => chart.series[i + 1]?.show !== false,
    (i) => {
      const label = data.series[i]?.label ?? "";
      const show = hidden.has(label);
      if (show) hidden.delete(label);
      else hidden.add(label);
      chart.setSeries(i + 1, { show });
      return chart.series[i + 1]?.show !== false;
    },
  );
  showFigures(figure, data, caption, text.dimension, format);
}

/**
 * Draws `data` into `figure` (replacing what was there): a uPlot bar chart, its legend, and a
 * table of the same figures. Bars of a category share its slot, widest first, so a window that
 * contains another (the day holds the hour) reads as nested bars.
 */
export function drawBars(figure: HTMLElement, data: BarData, text: BarText): void {
  watch(figure);
  draw(figure, data, text);
}

/** Shows `text` instead of a chart (nothing to draw yet). */
export function drawEmpty(figure: HTMLElement, text: string): void {
  drawn.get(figure)?.chart.destroy();
  drawn.delete(figure);
  figure.dataset.values = JSON.stringify({ categories: [], series: [] });
  const plot = plotOf(figure);
  plot?.removeAttribute("role");
  plot?.removeAttribute("aria-label");
  plot?.replaceChildren(
    Object.assign(document.createElement("p"), { className: "empty", textContent: text }),
  );
  clearLegend(figure);
  clearFigures(figure);
}

/** Draws every chart again (colours or widths changed), keeping what each shows. */
function redrawAll(only?: (figure: HTMLElement, d: Drawn) => boolean): void {
  for (const [figure, d] of drawn) if (!only || only(figure, d)) draw(figure, d.data, d.text);
}

let pending = 0;
const resized = new ResizeObserver(() => {
  // One redraw per frame, of the charts whose box is no longer the canvas's width.
  if (pending) return;
  pending = requestAnimationFrame(() => {
    pending = 0;
    redrawAll((figure, d) => (plotOf(figure)?.clientWidth ?? d.width) !== d.width);
  });
});
const watched = new WeakSet<HTMLElement>();
function watch(figure: HTMLElement): void {
  const plot = plotOf(figure);
  if (!plot || watched.has(plot)) return;
  watched.add(plot);
  resized.observe(plot);
}
onSchemeChange(() => redrawAll());
