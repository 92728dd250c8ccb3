/**
 * @module The Magic Box page for everyone (WCAG 2.2 AA): axe-core in light and dark, empty and
 * answered; send, stop, copy a code block and new chat by keyboard; scrollers the keyboard can
 * reach and whose focus ring shows whole; what a screen reader hears when an answer ends; a
 * visible label and a readable placeholder at every width; Copy buttons named as they read.
 */
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { axeViolations, contrast } from "./a11y";
import { waitForState } from "./browser";
import { CLIPBOARD, CODE, lastTurn, MARKDOWN_ANSWER, turns, useChatRig } from "./chat-setup";

const rig = useChatRig();

/** A code line far wider than the answer, so its block scrolls. */
const WIDE = `const wide = "${"x".repeat(300)}";`;
const WIDE_ANSWER = `Here is the code:\n\n\`\`\`js\n${WIDE}\n\`\`\`\n\nThat is all.`;

/** Puts the keyboard's starting point at the top of the page, as a click on its margin does. */
async function fromTop(page: Page): Promise<void> {
  await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
  await page.mouse.click(2, 2);
}

/** Presses Tab (at most `max` times) until `selector` has focus; fails if it never does. */
async function tabTo(page: Page, selector: string, max = 40): Promise<void> {
  for (let i = 0; i < max; i++) {
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) return;
    await page.keyboard.press("Tab");
  }
  throw new Error(`Tab never reached ${selector}`);
}

/**
 * Whether the focused element's outline lies inside every ancestor that clips (overflow other
 * than visible): a ring cut off at a box's edge is the bug this guards.
 */
function ringUnclipped(page: Page): Promise<boolean> {
  return page.evaluate(() => {
    const el = document.activeElement as HTMLElement;
    const style = getComputedStyle(el);
    if (style.outlineStyle === "none") return false;
    const grow = Number.parseFloat(style.outlineOffset) + Number.parseFloat(style.outlineWidth);
    const r = el.getBoundingClientRect();
    const ring = { l: r.left - grow, t: r.top - grow, r: r.right + grow, b: r.bottom + grow };
    for (let a = el.parentElement; a; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (s.overflowX === "visible" && s.overflowY === "visible") continue;
      const box = a.getBoundingClientRect();
      const bl = Number.parseFloat(s.borderLeftWidth);
      const bt = Number.parseFloat(s.borderTopWidth);
      if (
        s.overflowX !== "visible" &&
        (ring.l < box.left + bl - 0.5 || ring.r > box.right - bl + 0.5)
      )
        return false;
      if (
        s.overflowY !== "visible" &&
        a !== document.getElementById("conversation") &&
        (ring.t < box.top + bt - 0.5 || ring.b > box.bottom - bt + 0.5)
      )
        return false;
    }
    return true;
  });
}

// Several pages or answers per test, on machines that may be busy: 60 s each.
describe("the Magic Box page, for everyone", { timeout: 60_000 }, () => {
  it("passes axe (WCAG 2.2 A/AA and best practices) in light and dark, empty and answered, on a desktop and a phone", async () => {
    for (const viewport of [
      { width: 1000, height: 900 },
      { width: 390, height: 844 },
    ]) {
      const { page, problems, close } = await rig.open({ context: { viewport } });
      try {
        for (const scheme of ["light", "dark"] as const) {
          await page.emulateMedia({ colorScheme: scheme });
          expect(await axeViolations(page), `empty, ${scheme}, ${viewport.width}`).toEqual([]);
        }
        await page.emulateMedia({ colorScheme: "light" });
        rig.upstream().script("Show me everything", {
          text: MARKDOWN_ANSWER,
          reasoning: "Markdown, then a table.",
        });
        rig
          .upstream()
          .script("And a slow one", { text: "Word ".repeat(200), chunk: 5, delayMs: 30 });
        await page.locator("#prompt").fill("Show me everything");
        await page.keyboard.press("Enter");
        await waitForState(page, ["done"]);
        await page.locator("#prompt").fill("And a slow one");
        await page.keyboard.press("Enter");
        await waitForState(page, ["streaming"]);
        await page.keyboard.press("Escape");
        await waitForState(page, ["stopped"]);
        await turns(page).first().locator("details.reasoning summary").click();
        for (const scheme of ["light", "dark"] as const) {
          await page.emulateMedia({ colorScheme: scheme });
          expect(await axeViolations(page), `answered, ${scheme}, ${viewport.width}`).toEqual([]);
        }
        expect(problems).toEqual([]);
      } finally {
        await close();
      }
    }
  });

  it("sends, stops, copies a code block and starts a new chat by keyboard alone", async () => {
    const { page, problems, close } = await rig.open({ context: CLIPBOARD });
    try {
      rig.upstream().script("Code, please", { text: MARKDOWN_ANSWER });
      rig.upstream().script("Talk slowly", { text: "Slowly ".repeat(200), chunk: 5, delayMs: 30 });
      // The skip link leads to the message box (the page focuses the box itself on load).
      await fromTop(page);
      await page.keyboard.press("Tab");
      expect(await page.evaluate(() => document.activeElement?.textContent)).toBe(
        "Skip to the message box",
      );
      await page.keyboard.press("Enter");
      expect(await page.evaluate(() => document.activeElement?.id)).toBe("prompt");
      await page.keyboard.type("Code, please");
      await page.keyboard.press("Enter");
      await waitForState(page, ["done"]);
      await page.keyboard.type("Talk slowly");
      await page.keyboard.press("Enter");
      await waitForState(page, ["streaming"]);
      await page.keyboard.press("Escape");
      await waitForState(page, ["stopped"]);
      expect(await page.evaluate(() => document.activeElement?.id)).toBe("prompt");

      // From the top of the page, Tab reaches the first code block's Copy button.
      await fromTop(page);
      await tabTo(page, ".code-bar button.copy");
      await page.keyboard.press("Enter");
      await expect.poll(() => page.evaluate(() => navigator.clipboard.readText())).toBe(CODE);
      expect(await page.locator("#status").textContent()).toBe("Code copied to the clipboard.");

      await fromTop(page);
      await tabTo(page, "#new-chat");
      await page.keyboard.press("Enter");
      expect(await turns(page).count()).toBe(0);
      expect(await page.evaluate(() => document.activeElement?.id)).toBe("prompt");
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("code blocks and tables that scroll are named keyboard stops, scroll by arrow key, and show their whole focus ring", async () => {
    const { page, problems, close } = await rig.open({
      context: { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true },
    });
    try {
      rig.upstream().script("Something wide", { text: `${WIDE_ANSWER}\n\n${MARKDOWN_ANSWER}` });
      await page.locator("#prompt").fill("Something wide");
      await page.keyboard.press("Enter");
      await waitForState(page, ["done"]);
      const code = lastTurn(page).getByRole("region", { name: "js code" }).first();
      expect(await code.evaluate((e) => e.tagName)).toBe("PRE");
      expect(await code.getAttribute("tabindex")).toBe("0");
      await fromTop(page);
      await tabTo(page, ".code-block pre");
      expect(await ringUnclipped(page)).toBe(true);
      await page.keyboard.press("ArrowRight");
      await expect.poll(() => code.evaluate((e) => e.scrollLeft)).toBeGreaterThan(0);

      const table = lastTurn(page).getByRole("region", { name: "Table: Limit, Default" });
      expect(await table.getAttribute("tabindex")).toBe("0");
      await table.focus();
      expect(await ringUnclipped(page)).toBe(true);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("reads a finished answer out block by block, and says when it was stopped", async () => {
    const { page, problems, close } = await rig.open();
    try {
      rig.upstream().script("Read me code", {
        text: "Here is the code:\n\n```js\nconst answer = 42;\n```\n\n| a | b |\n| - | - |\n| 1 | 2 |",
      });
      rig
        .upstream()
        .script("Read me slowly", { text: "Slowly ".repeat(200), chunk: 5, delayMs: 30 });
      await page.locator("#prompt").fill("Read me code");
      await page.keyboard.press("Enter");
      await waitForState(page, ["done"]);
      await expect
        .poll(() => page.locator("#announce").textContent())
        .toBe(
          "Magic Box answered: Here is the code:\njs code: const answer = 42;\nTable: a, b; 1, 2.",
        );
      await page.locator("#prompt").fill("Read me slowly");
      await page.keyboard.press("Enter");
      await page.waitForFunction(
        () =>
          (document.querySelector(".turn:last-of-type .answer-text")?.textContent?.length ?? 0) >=
          20,
      );
      await page.keyboard.press("Escape");
      await waitForState(page, ["stopped"]);
      await expect
        .poll(() => page.locator("#announce").textContent())
        .toMatch(/^You stopped the answer\. Magic Box had written: Slowly Slowly Slowly/);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("keeps a visible label and a 4.5:1 placeholder at every width and in both schemes", async () => {
    for (const width of [1000, 390, 320]) {
      const { page, problems, close } = await rig.open({
        context: { viewport: { width, height: 800 } },
      });
      try {
        const label = page.locator("label[for=prompt]");
        const box = await label.boundingBox();
        expect(box?.width, `label width at ${width}`).toBeGreaterThan(40);
        expect(await label.evaluate((l) => getComputedStyle(l).clipPath), `${width}`).toBe("none");
        for (const scheme of ["light", "dark"] as const) {
          await page.emulateMedia({ colorScheme: scheme });
          const [placeholder, bg] = await page.evaluate(() => {
            const box = document.getElementById("prompt") as HTMLElement;
            return [
              getComputedStyle(box, "::placeholder").color,
              getComputedStyle(box).backgroundColor,
            ];
          });
          expect(contrast(placeholder, bg), `${scheme} at ${width}`).toBeGreaterThanOrEqual(4.5);
        }
        expect(problems).toEqual([]);
      } finally {
        await close();
      }
    }
  });

  it("names each Copy button by what it shows: Copy or Copied, then what it copies", async () => {
    const { page, problems, close } = await rig.open({ context: CLIPBOARD });
    try {
      rig.upstream().script("Copy test", { text: MARKDOWN_ANSWER });
      await page.locator("#prompt").fill("Copy test");
      await page.keyboard.press("Enter");
      await waitForState(page, ["done"]);
      const code = lastTurn(page).locator(".code-bar button.copy");
      expect(await code.ariaSnapshot()).toBe('- button "Copy js code"');
      // What is shown is the start of the name (the rest is for screen readers only).
      expect(await code.locator(".word").textContent()).toBe("Copy");
      await code.press("Enter");
      await expect.poll(() => code.ariaSnapshot()).toBe('- button "Copied js code"');
      expect(await code.locator(".word").textContent()).toBe("Copied");
      const answer = lastTurn(page).locator(".answer-head button.copy");
      expect(await answer.ariaSnapshot()).toBe('- button "Copy answer"');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });
});
