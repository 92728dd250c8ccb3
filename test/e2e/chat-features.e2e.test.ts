/**
 * @module Browser tests of what people expect of a chat: a list of chats kept in the browser
 * (new, switch, rename, delete after a confirmation), regenerate and edit-and-resend of the
 * last turn, syntax colours loaded only with code, a growing message box, a clear word when a
 * paste is cut, the figures in one line, and the demo banner from the start.
 */
import { join } from "node:path";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { ARTIFACTS, ask, waitForState } from "./browser";
import {
  answerText,
  CHATS_KEY,
  CLIPBOARD,
  CODE,
  lastTurn,
  MARKDOWN_ANSWER,
  streamBodies,
  turns,
  useChatRig,
} from "./chat-setup";

const rig = useChatRig();
const WIDE = { width: 1280, height: 900 };
const chatButtons = (page: Page) => page.locator("#chat-list .chat-open .chat-title");

// Several pages or answers per test, on machines that may be busy: 60 s each.
describe("Magic Box, as a chat people know", { timeout: 60_000 }, () => {
  it("keeps a list of chats: New chat keeps the last one, a chat opens from the list, is renamed and deleted after a confirmation", async () => {
    const { page, problems, close } = await rig.open({ context: { viewport: WIDE } });
    try {
      const bodies = streamBodies(page);
      await ask(page, "Name two colours.");
      await waitForState(page, ["done"]);
      await page.getByRole("button", { name: "New chat" }).click();
      await ask(page, "Name a fruit.");
      await waitForState(page, ["done"]);
      expect(await chatButtons(page).allTextContents()).toEqual([
        "Name a fruit.",
        "Name two colours.",
      ]);
      expect(await page.locator("#chat-list [aria-current]").textContent()).toContain(
        "Name a fruit.",
      );

      // Open the first chat from the list; a follow-up carries its history only.
      await page.locator("#chat-list .chat-open", { hasText: "Name two colours." }).click();
      expect(await page.locator(".you-text").allTextContents()).toEqual(["Name two colours."]);
      expect(await page.evaluate(() => document.activeElement?.id)).toBe("prompt");
      await ask(page, "And one more?");
      await waitForState(page, ["done"]);
      expect(bodies.at(-1)?.messages.map((m) => m.content)).toEqual([
        "Name two colours.",
        "You said: Name two colours.",
        "And one more?",
      ]);
      await page.reload();
      await page.locator('#quota[data-loaded="true"]').waitFor();
      expect(await turns(page).count()).toBe(2);

      // Rename in place, by keyboard.
      await page.getByRole("button", { name: "Rename “Name two colours.”" }).click();
      const name = page.getByRole("textbox", { name: "New name for “Name two colours.”" });
      expect(await page.evaluate(() => document.activeElement?.className)).toBe("chat-name");
      await name.fill("Colours");
      await name.press("Enter");
      expect(await chatButtons(page).first().textContent()).toBe("Colours");
      expect(await page.evaluate(() => document.activeElement?.getAttribute("aria-current"))).toBe(
        "true",
      );

      // Delete asks first; keeping it changes nothing, and focus goes back.
      const del = page.getByRole("button", { name: "Delete… “Colours”" });
      await del.click();
      const dialog = page.getByRole("dialog", { name: "Delete this chat?" });
      expect(await dialog.isVisible()).toBe(true);
      expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("Keep it");
      await page.screenshot({ path: join(ARTIFACTS, "chat-delete-confirm.png") });
      await page.keyboard.press("Escape");
      expect(await dialog.isVisible()).toBe(false);
      expect(await chatButtons(page).count()).toBe(2);
      await del.click();
      await dialog.getByRole("button", { name: "Delete" }).click();
      expect(await chatButtons(page).allTextContents()).toEqual(["Name a fruit."]);
      expect(await turns(page).count()).toBe(0);
      expect(await page.locator("#status").textContent()).toBe(
        "“Colours” was deleted. This is a new chat.",
      );
      const stored = await page.evaluate(() => Object.keys(localStorage).sort());
      expect(stored.filter((k) => k.startsWith("magicBox.chat."))).toHaveLength(1);
      expect(stored).toContain(CHATS_KEY);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("on a phone the list opens from the Chats button above the conversation, and closes with Escape", async () => {
    const { page, problems, close } = await rig.open({
      context: { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true },
    });
    try {
      await ask(page, "First on a phone");
      await waitForState(page, ["done"]);
      const toggle = page.getByRole("button", { name: "Chats" });
      expect(await page.locator("#chats").isVisible()).toBe(false);
      await toggle.click();
      expect(await toggle.getAttribute("aria-expanded")).toBe("true");
      expect(await page.locator("#chats").isVisible()).toBe(true);
      expect(await page.evaluate(() => document.activeElement?.getAttribute("aria-current"))).toBe(
        "true",
      );
      await page.keyboard.press("Escape");
      expect(await page.locator("#chats").isVisible()).toBe(false);
      expect(await page.evaluate(() => document.activeElement?.id)).toBe("chats-open");
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("regenerates the last answer, and edits and resends the last question, in place", async () => {
    const { page, problems, close } = await rig.open();
    try {
      const bodies = streamBodies(page);
      rig.upstream().script("Pick a number", { text: "Seven." });
      await ask(page, "Warm up");
      await waitForState(page, ["done"]);
      await ask(page, "Pick a number");
      await waitForState(page, ["done"]);
      // Only the last turn offers them.
      expect(await page.getByRole("button", { name: /^Regenerate/ }).count()).toBe(1);
      expect(await page.getByRole("button", { name: /^Edit/ }).count()).toBe(1);
      rig.upstream().script("Pick a number", { text: "Three." });
      await page.getByRole("button", { name: "Regenerate the last answer" }).click();
      await waitForState(page, ["done"]);
      expect(await turns(page).count()).toBe(2);
      expect(await answerText(page).textContent()).toBe("Three.");
      // Asked again with the history before it, not with the answer it replaces.
      expect(bodies.at(-1)?.messages.map((m) => m.content)).toEqual([
        "Warm up",
        "You said: Warm up",
        "Pick a number",
      ]);

      await page.getByRole("button", { name: "Edit your last question" }).click();
      expect(await page.locator("#prompt").inputValue()).toBe("Pick a number");
      expect(await page.locator("#editing").isVisible()).toBe(true);
      expect(await page.evaluate(() => document.activeElement?.id)).toBe("prompt");
      // Escape gives back what was in the box before.
      await page.keyboard.press("Escape");
      expect(await page.locator("#editing").isVisible()).toBe(false);
      expect(await page.locator("#prompt").inputValue()).toBe("");
      await page.getByRole("button", { name: "Edit your last question" }).click();
      await page.locator("#prompt").fill("Pick an even number");
      await page.keyboard.press("Enter");
      await waitForState(page, ["done"]);
      expect(await turns(page).count()).toBe(2);
      expect(await lastTurn(page).locator(".you-text").textContent()).toBe("Pick an even number");
      expect(bodies.at(-1)?.messages.map((m) => m.content)).toEqual([
        "Warm up",
        "You said: Warm up",
        "Pick an even number",
      ]);
      expect(await page.locator("#editing").isVisible()).toBe(false);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("colours code with a highlighter fetched only when a code block appears", async () => {
    const { page, problems, close } = await rig.open({ context: CLIPBOARD });
    try {
      const fetched: string[] = [];
      page.on("request", (r) => {
        if (r.url().includes("highlight")) fetched.push(new URL(r.url()).pathname);
      });
      await ask(page, "No code here");
      await waitForState(page, ["done"]);
      expect(fetched).toEqual([]);
      rig.upstream().script("Code please", { text: MARKDOWN_ANSWER });
      await ask(page, "Code please");
      await waitForState(page, ["done"]);
      const code = lastTurn(page).locator("pre code");
      await code.locator("span.hljs-keyword").first().waitFor();
      expect(fetched).toEqual(["/magic/highlight.bundle.js"]);
      expect(await code.locator("span.hljs-keyword").first().textContent()).toBe("const");
      expect(await code.textContent()).toBe(CODE);
      await lastTurn(page).locator(".code-bar button.copy").click();
      await expect.poll(() => page.evaluate(() => navigator.clipboard.readText())).toBe(CODE);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("grows the message box with its text, and says when a paste was cut to the limit", async () => {
    const { page, problems, close } = await rig.open({ context: CLIPBOARD });
    try {
      const box = page.locator("#prompt");
      const height = () => box.evaluate((b) => b.getBoundingClientRect().height);
      const start = await height();
      await box.fill("one\ntwo\nthree\nfour\nfive\nsix");
      expect(await height()).toBeGreaterThan(start + 30);
      await box.fill("");
      expect(await height()).toBeLessThan(start + 2);

      await page.evaluate(() => navigator.clipboard.writeText("x".repeat(9000)));
      await box.focus();
      await page.keyboard.press("ControlOrMeta+V");
      expect((await box.inputValue()).length).toBe(8192);
      const note = page.locator("#length-note");
      expect(await note.textContent()).toBe(
        "The paste was 9,000 characters, more than a message can hold (8,192), so its last 808 were left out.",
      );
      expect(await note.isVisible()).toBe(true);
      expect(await page.locator("#status").textContent()).toBe(await note.textContent());
      expect(await box.getAttribute("aria-describedby")).toContain("length-note");
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("shows an answer's figures in one quiet line that fits a phone, the details one click away", async () => {
    for (const width of [390, 320]) {
      const { page, problems, close } = await rig.open({
        context: { viewport: { width, height: 800 }, isMobile: true, hasTouch: true },
      });
      try {
        await ask(page, "Figures, please");
        await waitForState(page, ["done"]);
        const line = lastTurn(page).locator(".figures summary");
        expect(await line.textContent()).toMatch(/^Figures: \S+ · \$0\.\d{6} · \d+(\.\d)? m?s$/);
        const [h, lh] = await line.evaluate((s) => [
          s.getBoundingClientRect().height,
          Number.parseFloat(getComputedStyle(s).lineHeight),
        ]);
        expect(h, `${width}`).toBeLessThan(lh * 1.6 + 4);
        expect(await lastTurn(page).locator('[data-metric="tokens"]').isVisible()).toBe(false);
        await line.click();
        expect(await lastTurn(page).locator('[data-metric="tokens"]').isVisible()).toBe(true);
        if (width === 390)
          await page.screenshot({ path: join(ARTIFACTS, "chat-phone-features.png") });
        expect(problems).toEqual([]);
      } finally {
        await close();
      }
    }
  });

  it("shows the demo banner from the start once the demo model has answered in this browser, and drops it when a real one answers", async () => {
    const { page, problems, close } = await rig.open({ storage: { "magicBox.demo": "1" } });
    try {
      expect(await page.locator("#demo-notice").isVisible()).toBe(true);
      await ask(page, "Is this the demo?");
      await waitForState(page, ["done"]);
      expect(await page.locator("#demo-notice").isVisible()).toBe(false);
      expect(await page.evaluate(() => localStorage.getItem("magicBox.demo"))).toBeNull();
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });
});
