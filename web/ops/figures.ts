/**
 * @module The table of figures under each chart: the same numbers as the bars, for screen
 * readers, for copying, and for anyone who cannot tell two bars apart. Updated in place, so a
 * refresh keeps an open disclosure open and leaves focus where it was.
 */
import { watchScroller } from "./scrollers";

/** What a figures table shows: a row per category, a column per series. */
export interface FigureRows {
  categories: string[];
  series: { label: string; values: number[] }[];
}

/** Long tables (histograms, 30 days) fold away under the chart. */
const FOLD_OVER = 8;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text = "", className = "") {
  const node = document.createElement(tag);
  if (text) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function tableOf(
  data: FigureRows,
  caption: string,
  dimension: string,
  format: (v: number) => string,
): HTMLTableElement {
  const table = el("table", "", "figures");
  // The figure's own caption names the chart; this one names the table for table navigation.
  table.createCaption().append(el("span", `${caption}: figures`, "sr-only"));
  const head = table.createTHead().insertRow();
  for (const h of [dimension, ...data.series.map((s) => s.label)]) {
    const th = el("th", h);
    th.scope = "col";
    head.append(th);
  }
  const body = table.createTBody();
  data.categories.forEach((c, i) => {
    const row = body.insertRow();
    const th = el("th", c);
    th.scope = "row";
    row.append(th);
    for (const s of data.series) row.insertCell().textContent = format(s.values[i] ?? 0);
  });
  return table;
}

/**
 * Shows `data` as a table in `figure` (after its chart), named by `caption`; the first column
 * is headed `dimension` ("status", "day"). A long table sits in a disclosure named after the
 * chart, so several on the page stay apart in a list of controls.
 */
export function showFigures(
  figure: HTMLElement,
  data: FigureRows,
  caption: string,
  dimension: string,
  format: (v: number) => string,
): void {
  const table = tableOf(data, caption, dimension, format);
  const old = figure.querySelector("table.figures");
  // Wide tables (four columns on a phone) scroll in their box rather than overflow the card.
  const box = old?.parentElement ?? el("div", "", "table-scroll");
  box.dataset.label = `${caption}: figures`;
  if (old) old.replaceChildren(...table.childNodes);
  else {
    box.append(table);
    if (data.categories.length <= FOLD_OVER) figure.append(box);
    else {
      const details = el("details");
      const summary = el("summary", "Figures");
      summary.append(el("span", ` of ${caption}`, "sr-only"));
      details.append(summary, box);
      figure.append(details);
    }
  }
  watchScroller(box);
}

/** Removes the figures of `figure` (nothing to show). */
export function clearFigures(figure: HTMLElement): void {
  figure.querySelector("details")?.remove();
  figure.querySelector(".table-scroll")?.remove();
}
