/**
 * @module The charts' colours, read from the page's CSS variables at draw time, so a canvas
 * follows the colour scheme like the rest of the page (uPlot's own defaults are black text).
 */

/** The colours a bar can take: the last hour, the last day, a limit (drawn as an outline). */
export type BarColor = "hour" | "day" | "limit";

/** Everything a chart paints, as CSS colour strings. */
export interface Palette {
  /** Axis labels and ticks: the page's text colour. */
  text: string;
  /** Grid lines: the card borders' colour (decoration, not information). */
  grid: string;
  bars: Record<BarColor, string>;
}

/** The palette in force for `el` now (the variables are set per colour scheme in ops.css). */
export function paletteOf(el: Element): Palette {
  const style = getComputedStyle(el);
  const v = (name: string, fallback: string) => style.getPropertyValue(name).trim() || fallback;
  return {
    text: v("--fg", "#1f2328"),
    grid: v("--line", "#d0d7de"),
    bars: {
      hour: v("--bar-hour", "#0a3069"),
      day: v("--bar-day", "#4a88e0"),
      limit: v("--bar-limit", "#57606a"),
    },
  };
}

/** Calls `redraw` when the colour scheme flips (the variables change, the canvases do not). */
export function onSchemeChange(redraw: () => void): void {
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redraw);
}
