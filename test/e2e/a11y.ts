/**
 * @module Accessibility checks for the browser tests: axe-core run inside the page (WCAG 2.2 A
 * and AA and axe's best practices), and colour contrast computed from the colours the page uses.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { Page } from "playwright-core";

const AXE_SOURCE = readFileSync(
  createRequire(import.meta.url).resolve("axe-core/axe.min.js"),
  "utf8",
);
/** The rule sets the pages must pass: every WCAG 2.0-2.2 A/AA rule and the best practices. */
const TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"];

/**
 * Runs axe-core on the page as it is now and answers one line per violation (empty: none).
 * axe is evaluated through the DevTools protocol, so the page's CSP, which forbids inline
 * scripts, stays as served.
 */
export async function axeViolations(page: Page): Promise<string[]> {
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(AXE_SOURCE);
  return page.evaluate(async (tags) => {
    const axe = (window as unknown as { axe: AxeLike }).axe;
    const result = await axe.run(document, {
      runOnly: { type: "tag", values: tags },
      resultTypes: ["violations"],
    });
    return result.violations.map(
      (v) =>
        `${v.id} (${v.impact}): ${v.help}: ${v.nodes
          .slice(0, 5)
          .map((n) => `${n.target.join(" ")} ${n.failureSummary ?? ""}`.trim())
          .join(" | ")}`,
    );
  }, TAGS);
}

interface AxeLike {
  run(
    context: Document,
    options: Record<string, unknown>,
  ): Promise<{
    violations: {
      id: string;
      impact: string;
      help: string;
      nodes: { target: string[]; failureSummary?: string }[];
    }[];
  }>;
}

/** An sRGB colour as [r, g, b] (0..255). */
export type Rgb = [number, number, number];

/** Parses Chromium's computed colours: `rgb(r, g, b)` and `rgba(r, g, b, a)` (alpha ignored). */
export function parseRgb(css: string): Rgb {
  const m = /rgba?\((\d+(?:\.\d+)?),\s*(\d+(?:\.\d+)?),\s*(\d+(?:\.\d+)?)/.exec(css);
  if (!m) throw new Error(`not an rgb() colour: ${css}`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

function luminance([r, g, b]: Rgb): number {
  const f = (c: number) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
}

/** The WCAG contrast ratio of two colours (1..21). */
export function contrast(a: Rgb | string, b: Rgb | string): number {
  const [x, y] = [a, b].map((c) => luminance(typeof c === "string" ? parseRgb(c) : c)) as [
    number,
    number,
  ];
  return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
}

/** Any CSS colour (a hex value, a variable's value) as Chromium computes it: `rgb(...)`. */
export function computedColor(page: Page, css: string): Promise<string> {
  return page.evaluate((value) => {
    const probe = document.createElement("i");
    probe.style.color = value;
    document.body.append(probe);
    const out = getComputedStyle(probe).color;
    probe.remove();
    return out;
  }, css);
}
