/**
 * @module An answer's figures as one quiet line (model, cost, time) that opens to the details
 * (tokens in and out, first token, total time): the numbers are there for who wants them,
 * without a developer's table under every answer, and the line fits a phone's width.
 */
import { el } from "./blocks";

/** The line and its details, kept in step with a turn's [key, label, value] rows. */
export function createFigures() {
  const root = el("details", "figures");
  const summary = el("summary");
  const line = el("span", "figures-line");
  summary.append(el("span", "sr-only", "Figures: "), line);
  const list = el("dl", "metrics");
  root.append(summary, list);
  return {
    root,
    /** Shows `rows`; `live` while the answer streams (the cost is "so far"). */
    render(rows: [string, string, string][], live: boolean): void {
      root.hidden = rows.length === 0;
      const value = (key: string) => rows.find(([k]) => k === key)?.[2] ?? "";
      const shown = (v: string) => v !== "" && v !== "–";
      line.textContent = live
        ? `${value("cost")} so far`
        : [value("model"), value("cost"), value("duration")].filter(shown).join(" · ");
      list.replaceChildren();
      for (const [key, label, v] of rows) {
        // A <div> per pair (allowed in <dl>) keeps each label with its value when lines wrap.
        const pair = el("div");
        const dd = el("dd", "", v);
        dd.dataset.metric = key;
        pair.append(el("dt", "", label), dd);
        list.append(pair);
      }
    },
  };
}
