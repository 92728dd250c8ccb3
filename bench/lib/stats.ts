/** @module Percentiles and small formatting helpers for the bench reports. */

export interface Summary {
  n: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  mean: number | null;
  min: number | null;
  max: number | null;
}

/** The q-quantile (0..1) of sorted values, linearly interpolated between ranks. */
export function quantile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (b - a) * (pos - lo);
}

/** n, p50/p95/p99, mean, min, max of `values` (nulls left out). */
export function summarize(values: (number | null | undefined)[]): Summary {
  const v = values.filter((x): x is number => typeof x === "number" && Number.isFinite(x));
  v.sort((a, b) => a - b);
  return {
    n: v.length,
    p50: quantile(v, 0.5),
    p95: quantile(v, 0.95),
    p99: quantile(v, 0.99),
    mean: v.length ? v.reduce((a, b) => a + b, 0) / v.length : null,
    min: v[0] ?? null,
    max: v[v.length - 1] ?? null,
  };
}

/** Rounds to `digits` decimals (null stays null), for JSON results. */
export function round(x: number | null | undefined, digits = 2): number | null {
  if (x === null || x === undefined || !Number.isFinite(x)) return null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** A number for a table cell. */
export function fmt(x: number | null | undefined, digits = 1): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return "–";
  return x.toFixed(digits);
}

/** Least-squares slope of y over x. */
export function slope(points: { x: number; y: number }[]): number | null {
  const n = points.length;
  if (n < 2) return null;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? null : num / den;
}

/** A markdown table. */
export function table(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(head), line(head.map(() => "---")), ...rows.map(line)].join("\n");
}

/** The mean of `xs` to 3 digits, or null when there is none or any is null (a loop not read). */
export function meanOf(xs: (number | null)[]): number | null {
  return xs.length === 0 || xs.some((x) => x === null)
    ? null
    : round((xs as number[]).reduce((a, b) => a + b) / xs.length, 3);
}
