/**
 * @module The operator page for everyone (WCAG 2.2 AA): axe-core in light and dark, before and
 * after the charts are drawn; sign-in, refresh and the legends by keyboard; focus after sign-in;
 * the canvases' colours; a 320 px screen; a status line that speaks only news.
 */
import { join } from "node:path";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { axeViolations, computedColor, contrast, type Rgb } from "./a11y";
import { ARTIFACTS, collectProblems } from "./browser";
import { chartData, signInByKeyboard, useOpsRig } from "./ops-setup";

const rig = useOpsRig(1);

async function open(viewport = { width: 1280, height: 900 }) {
  const context = await rig.browser().newContext({ viewport });
  const page = await context.newPage();
  const problems = collectProblems(page);
  await page.goto(`${rig.dev().url}/magic/ops/`);
  return { page, problems, close: () => context.close() };
}

/**
 * The colours a chart's canvas paints in its x-axis band (the labels), each with its coverage
 * (alpha), composited over the card: what a reader of the labels sees.
 */
function axisLabelColors(page: Page, figure: string): Promise<Rgb[]> {
  return page.evaluate((id) => {
    const el = document.getElementById(id) as HTMLElement;
    const canvas = el.querySelector("canvas") as HTMLCanvasElement;
    const card = getComputedStyle(el.closest("figure") as HTMLElement)
      .backgroundColor.match(/\d+/g)
      ?.map(Number) as number[];
    const scale = canvas.width / canvas.clientWidth;
    const band = Math.round(30 * scale);
    const ctx = canvas.getContext("2d") as CanvasRenderingContext2D;
    const { data } = ctx.getImageData(0, canvas.height - band, canvas.width, band);
    const out: [number, number, number][] = [];
    for (let i = 0; i < data.length; i += 4) {
      const a = (data[i + 3] as number) / 255;
      if (a < 0.75) continue;
      const mix = (k: number) => Math.round(a * (data[i + k] as number) + (1 - a) * (card[k] ?? 0));
      out.push([mix(0), mix(1), mix(2)]);
    }
    return out;
  }, figure);
}

/** How many pixels of the chart's canvas are `color` (±2 per channel). */
function pixelsOf(page: Page, figure: string, color: string): Promise<number> {
  return page.evaluate(
    ([id, css]) => {
      const canvas = document.querySelector(`#${id} canvas`) as HTMLCanvasElement;
      const want = (css as string).match(/\d+/g)?.map(Number) as number[];
      const ctx = canvas.getContext("2d") as CanvasRenderingContext2D;
      const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
      let n = 0;
      for (let i = 0; i < data.length; i += 4)
        if (
          data[i + 3] === 255 &&
          [0, 1, 2].every((k) => Math.abs((data[i + k] ?? 0) - (want[k] ?? 0)) <= 2)
        )
          n++;
      return n;
    },
    [figure, color],
  );
}

/**
 * Waits until every chart is drawn in the colour scheme now in force. The card's colour follows
 * the scheme at once, but the charts are redrawn only on the scheme's `change` event, which comes
 * with a later frame. web/ops/charts.ts's draw() reads the palette (axis text, bars) from the CSS
 * variables and writes the bars' colours to the figure's `data-values` in the same task that
 * paints the canvas (uPlot paints in a microtask): when those colours are the variables' values
 * now (the schemes share none), the canvas, its axis labels too, is in this scheme's colours.
 */
function waitForRedraw(page: Page): Promise<unknown> {
  return page.waitForFunction(() =>
    ["chart-requests", "chart-budgets"].every((id) => {
      const figure = document.getElementById(id);
      if (!figure) return false;
      const style = getComputedStyle(figure);
      const now = ["--bar-hour", "--bar-day", "--bar-limit"].map((v) =>
        style.getPropertyValue(v).trim(),
      );
      const { series = [] } = JSON.parse(figure.dataset.values ?? "{}") as {
        series?: { color: string }[];
      };
      // The requests chart always has bars; the budgets chart may be empty (nothing to paint).
      if (id === "chart-requests" && series.length === 0) return false;
      return series.every((s) => now.includes(s.color));
    }),
  );
}

const cardColor = (page: Page) =>
  page.evaluate(
    () => getComputedStyle(document.querySelector("figure") as HTMLElement).backgroundColor,
  );

// Several pages or answers per test, on machines that may be busy: 60 s each.
describe("the operator page, for everyone", { timeout: 60_000 }, () => {
  it("passes axe (WCAG 2.2 A/AA and best practices) in light and dark, before and after sign-in", async () => {
    const { page, problems, close } = await open();
    try {
      for (const scheme of ["light", "dark"] as const) {
        await page.emulateMedia({ colorScheme: scheme });
        expect(await axeViolations(page), `sign-in form, ${scheme}`).toEqual([]);
      }
      await page.emulateMedia({ colorScheme: "light" });
      await signInByKeyboard(page);
      // Open the folded figures too, so their tables are checked.
      for (const summary of await page.locator("summary").all()) await summary.click();
      for (const scheme of ["light", "dark"] as const) {
        await page.emulateMedia({ colorScheme: scheme });
        expect(await axeViolations(page), `the board, ${scheme}`).toEqual([]);
      }
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("signs in and refreshes by keyboard, and puts focus on the board it shows", async () => {
    const { page, problems, close } = await open();
    try {
      await signInByKeyboard(page);
      expect(await page.evaluate(() => document.activeElement?.id)).toBe("board");
      expect(await page.locator("#announce").textContent()).toMatch(/^The board is up to date/);
      // Back from the board to the header's tools: Forget tokens, then Refresh.
      await page.keyboard.press("Shift+Tab");
      await page.keyboard.press("Shift+Tab");
      expect(await page.evaluate(() => document.activeElement?.id)).toBe("refresh");
      const again = page.waitForResponse((r) => r.url().endsWith("/api/v1/metrics"));
      await page.keyboard.press("Enter");
      expect((await again).status()).toBe(200);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("legends are buttons: a series hides and shows again by keyboard, and stays hidden over a refresh", async () => {
    const { page, problems, close } = await open();
    try {
      await signInByKeyboard(page);
      const hour = page
        .locator("#chart-requests .legend")
        .getByRole("button", { name: "last hour" });
      expect(await hour.getAttribute("aria-pressed")).toBe("true");
      const canvas = () =>
        page.evaluate(() =>
          (document.querySelector("#chart-requests canvas") as HTMLCanvasElement).toDataURL(),
        );
      const before = await canvas();
      await hour.focus();
      await page.keyboard.press("Space");
      expect(await hour.getAttribute("aria-pressed")).toBe("false");
      expect(await canvas()).not.toBe(before);
      await page.locator("#refresh").click();
      await page.waitForFunction(() => document.querySelector("#announce")?.textContent);
      expect(await hour.getAttribute("aria-pressed")).toBe("false");
      await hour.focus();
      await page.keyboard.press("Enter");
      expect(await hour.getAttribute("aria-pressed")).toBe("true");
      // No table of uPlot's is left to read as data: the legend is a group of buttons.
      expect(await page.locator(".u-legend").count()).toBe(0);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("draws in the page's colours, light and dark: axis labels 4.5:1, bars 3:1 against the card and the hour against the day", async () => {
    const { page, problems, close } = await open();
    try {
      await signInByKeyboard(page);
      for (const scheme of ["light", "dark"] as const) {
        // The charts are drawn again when the scheme flips, with no refresh.
        await page.emulateMedia({ colorScheme: scheme });
        await waitForRedraw(page);
        const card = await cardColor(page);
        const labels = await axisLabelColors(page, "chart-requests");
        expect(labels.length, scheme).toBeGreaterThan(20);
        const best = Math.max(...labels.map((c) => contrast(c, card)));
        expect(best, `axis labels, ${scheme}`).toBeGreaterThanOrEqual(4.5);

        const requests = await chartData(page, "chart-requests");
        const [day, hour] = await Promise.all(
          requests.series.map((s) => computedColor(page, s.color)),
        );
        expect(contrast(day as string, card), `day bars, ${scheme}`).toBeGreaterThanOrEqual(3);
        expect(contrast(hour as string, card), `hour bars, ${scheme}`).toBeGreaterThanOrEqual(3);
        expect(
          contrast(hour as string, day as string),
          `hour in day, ${scheme}`,
        ).toBeGreaterThanOrEqual(3);
        // Those are the colours on the canvas, not only in the figure's data.
        expect(await pixelsOf(page, "chart-requests", day as string)).toBeGreaterThan(50);
        expect(await pixelsOf(page, "chart-requests", hour as string)).toBeGreaterThan(50);
        const budgets = await chartData(page, "chart-budgets");
        for (const s of budgets.series) {
          const color = await computedColor(page, s.color);
          expect(contrast(color, card), `budget ${s.label}, ${scheme}`).toBeGreaterThanOrEqual(3);
        }
      }
      await page.screenshot({ path: join(ARTIFACTS, "ops-page-dark.png"), fullPage: true });
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("on a 320 px screen: every canvas fits its card (redrawn on resize), long ids scroll instead of wrapping", async () => {
    const { page, problems, close } = await open();
    try {
      await signInByKeyboard(page);
      await page.setViewportSize({ width: 320, height: 800 });
      const fits = () =>
        page.evaluate(() =>
          Array.from(document.querySelectorAll<HTMLElement>(".plot"))
            .filter((p) => p.querySelector("canvas"))
            .every((p) => (p.querySelector(".uplot") as HTMLElement).offsetWidth <= p.clientWidth),
        );
      await expect.poll(fits, { timeout: 5_000 }).toBe(true);
      expect(
        await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
      ).toBe(true);
      const id = page.locator("#top-spenders tbody tr td").first();
      expect(await id.textContent()).toBe(rig.user());
      const lineHeight = await id.evaluate((td) => parseFloat(getComputedStyle(td).lineHeight));
      expect((await id.boundingBox())?.height).toBeLessThan(lineHeight * 2);
      const scroller = page.getByRole("region", { name: "Top spenders today (ledger)" });
      expect(await scroller.getAttribute("tabindex")).toBe("0");
      expect(await scroller.evaluate((s) => s.scrollWidth > s.clientWidth)).toBe(true);
      await scroller.focus();
      await page.keyboard.press("ArrowRight");
      await expect.poll(() => scroller.evaluate((s) => s.scrollLeft)).toBeGreaterThan(0);
      // Every box that scrolls is a named stop for the keyboard, the figures' too.
      expect(await axeViolations(page)).toEqual([]);
      await page.screenshot({ path: join(ARTIFACTS, "ops-320.png"), fullPage: true });
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("names every table and disclosure apart, and heads every column", async () => {
    const { page, problems, close } = await open();
    try {
      await signInByKeyboard(page);
      const tables = await page.evaluate(() =>
        Array.from(document.querySelectorAll("table.figures")).map((t) => ({
          caption: t.querySelector("caption")?.textContent ?? "",
          emptyHeads: Array.from(t.querySelectorAll("thead th")).filter(
            (th) => !th.textContent?.trim(),
          ).length,
        })),
      );
      expect(tables.length).toBeGreaterThanOrEqual(7);
      for (const t of tables) {
        expect(t.caption).toMatch(/: figures$/);
        expect(t.emptyHeads).toBe(0);
      }
      expect(new Set(tables.map((t) => t.caption)).size).toBe(tables.length);
      const summaries = await page.locator("summary").allTextContents();
      expect(summaries.length).toBeGreaterThanOrEqual(2);
      expect(new Set(summaries).size).toBe(summaries.length);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("reads out news only: an automatic refresh updates the time without a word", async () => {
    const context = await rig.browser().newContext({ viewport: { width: 1280, height: 900 } });
    await context.clock.install();
    const page = await context.newPage();
    const problems = collectProblems(page);
    try {
      await page.goto(`${rig.dev().url}/magic/ops/`);
      await signInByKeyboard(page);
      const spoken = await page.locator("#announce").textContent();
      expect(spoken).toMatch(/^The board is up to date/);
      // Every change the live region goes through from now on.
      await page.evaluate(() => {
        const w = window as unknown as { heard: string[] };
        w.heard = [];
        const live = document.getElementById("announce") as HTMLElement;
        new MutationObserver(() => w.heard.push(live.textContent ?? "")).observe(live, {
          childList: true,
          characterData: true,
          subtree: true,
        });
      });
      const loaded = await page.getAttribute("body", "data-loaded");
      const shown = await page.textContent("#status");
      await context.clock.runFor(16_000);
      await page.waitForFunction((was) => document.body.dataset.loaded !== was, loaded);
      expect(await page.textContent("#status")).not.toBe(shown);
      expect(await page.evaluate(() => (window as unknown as { heard: string[] }).heard)).toEqual(
        [],
      );
      expect(await page.locator("#status").getAttribute("aria-live")).toBeNull();
      expect(problems).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
