/**
 * @module A chart's legend as toggle buttons: uPlot's own legend is a table that toggles by
 * mouse only and reads as a data table; buttons with aria-pressed work by keyboard and say
 * their state. The buttons are kept across redraws, so a refresh does not take focus away.
 */

/** One entry: the series' label and its colour (a swatch, and an outline for a limit). */
export interface LegendEntry {
  label: string;
  color: string;
  outline: boolean;
}

/**
 * Shows `entries` as buttons in `figure` (before its figures), each pressed while its series
 * is shown; `toggle(i)` shows or hides series `i` and answers whether it is now shown.
 */
export function showLegend(
  figure: HTMLElement,
  caption: string,
  entries: LegendEntry[],
  shown: (i: number) => boolean,
  toggle: (i: number) => boolean,
): void {
  let group = figure.querySelector<HTMLElement>(".legend");
  if (!group) {
    group = document.createElement("div");
    group.className = "legend";
    group.setAttribute("role", "group");
    figure.querySelector(".plot")?.after(group);
  }
  group.setAttribute("aria-label", `Series of ${caption}`);
  const buttons = [...group.querySelectorAll<HTMLButtonElement>("button")];
  entries.forEach((entry, i) => {
    let button = buttons[i];
    if (!button) {
      button = document.createElement("button");
      button.type = "button";
      group.append(button);
    }
    const swatch = document.createElement("span");
    swatch.className = entry.outline ? "swatch outline" : "swatch";
    swatch.setAttribute("aria-hidden", "true");
    // A CSS custom property, not a style attribute: the CSP allows no inline styles.
    swatch.style.setProperty("--swatch", entry.color);
    button.replaceChildren(swatch, entry.label);
    button.setAttribute("aria-pressed", String(shown(i)));
    button.onclick = () => button.setAttribute("aria-pressed", String(toggle(i)));
  });
  for (const extra of buttons.slice(entries.length)) extra.remove();
}

/** Removes the legend of `figure`. */
export function clearLegend(figure: HTMLElement): void {
  figure.querySelector(".legend")?.remove();
}
