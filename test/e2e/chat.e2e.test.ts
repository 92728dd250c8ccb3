/**
 * @module Browser tests of the Magic Box as a chat: the history each send carries, reload, New
 * chat, markdown while it streams, copying, hostile answers, reasoning. Chromium against a real
 * `wrangler dev` whose upstream the test scripts (see chat-setup.ts).
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
/** The titles in the stored list of chats. */
const storedTitles = async (page: Page) =>
  (
    JSON.parse(
      (await page.evaluate((k) => localStorage.getItem(k), CHATS_KEY)) ?? '{"chats":[]}',
    ) as { chats: { title: string }[] }
  ).chats.map((c) => c.title);

/** Elements a rendered answer may hold: the sanitizer's allow-list and the page's own wrappers. */
const ALLOWED = new Set([
  "p",
  "br",
  "hr",
  "h1",
  "h2",
  "h3",
  "h4",
  "h5",
  "h6",
  "ul",
  "ol",
  "li",
  "blockquote",
  "pre",
  "code",
  "em",
  "strong",
  "del",
  "a",
  "table",
  "thead",
  "tbody",
  "tr",
  "th",
  "td",
  "div.code-block",
  "div.code-bar",
  "span.code-lang",
  "button.copy",
  "span.word",
  "span.sr-only",
  "div.table-wrap",
]);
describe("Magic Box conversations", () => {
  it("carries the first turn in the second request, keeps the chat over a reload, and New chat starts an empty one", async () => {
    const { page, problems, close } = await rig.open();
    try {
      const bodies = streamBodies(page);
      rig.upstream().script("Name two colours.", { text: "1. Red\n2. Blue" });
      rig.upstream().script("And a third one?", { text: "Green, after **red** and **blue**." });
      await ask(page, "Name two colours.");
      await waitForState(page, ["done"]);
      await ask(page, "And a third one?");
      await waitForState(page, ["done"]);

      expect(bodies[0]?.messages).toEqual([{ role: "user", content: "Name two colours." }]);
      const history = [
        { role: "user", content: "Name two colours." },
        { role: "assistant", content: "1. Red\n2. Blue" },
        { role: "user", content: "And a third one?" },
      ];
      expect(bodies[1]?.messages).toEqual(history);
      // The model received the same conversation, in order, after any system prompt.
      const seen = rig
        .upstream()
        .requests.at(-1)
        ?.messages.filter((m) => m.role !== "system");
      expect(seen).toEqual(history);
      expect(await turns(page).first().locator(".answer-text ol li").allTextContents()).toEqual([
        "Red",
        "Blue",
      ]);

      await page.reload();
      await page.locator('#quota[data-loaded="true"]').waitFor();
      expect(await turns(page).count()).toBe(2);
      expect(await page.locator(".you-text").allTextContents()).toEqual([
        "Name two colours.",
        "And a third one?",
      ]);
      expect(await answerText(page).textContent()).toBe("Green, after red and blue.");
      expect(await lastTurn(page).getAttribute("data-state")).toBe("done");
      expect(await lastTurn(page).locator('[data-metric="cost"]').textContent()).toMatch(
        /^\$0\.\d{6}$/,
      );

      await page.getByRole("button", { name: "New chat" }).click();
      expect(await turns(page).count()).toBe(0);
      // The chat before is kept in the list, titled by its first question.
      expect(await storedTitles(page)).toEqual(["Name two colours."]);
      expect(await page.locator("#empty").isVisible()).toBe(true);
      expect(await page.evaluate(() => document.activeElement?.id)).toBe("prompt");
      await page.reload();
      await page.locator('#quota[data-loaded="true"]').waitFor();
      expect(await turns(page).count()).toBe(0);

      await ask(page, "A fresh start");
      await waitForState(page, ["done"]);
      expect(bodies.at(-1)?.messages).toEqual([{ role: "user", content: "A fresh start" }]);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("renders markdown (heading, list, table, code) while it streams; Copy puts the code and the answer on the clipboard", async () => {
    const { page, problems, close } = await rig.open({
      context: { ...CLIPBOARD, viewport: { width: 1280, height: 1000 } },
    });
    try {
      rig.upstream().script("How does the gateway keep costs down?", {
        text: "By **holding** the worst case, *metering* each token and capping:\n\n1. hold at admission\n2. meter while streaming\n3. stop at the cap",
      });
      rig.upstream().script("Show it as a table, with a code sample", {
        text: MARKDOWN_ANSWER,
        chunk: 6,
        delayMs: 15,
      });
      await ask(page, "How does the gateway keep costs down?");
      await waitForState(page, ["done"]);
      // Record, inside the page, whether list items and table cells appeared while streaming.
      await page.evaluate(() => {
        const w = window as unknown as { seenWhileStreaming: string[] };
        w.seenWhileStreaming = [];
        new MutationObserver(() => {
          const turn = document.querySelector(".turn:last-of-type");
          if (turn?.getAttribute("data-state") !== "streaming") return;
          for (const tag of ["li", "td", "pre"])
            if (turn.querySelector(`.answer-text ${tag}`) && !w.seenWhileStreaming.includes(tag))
              w.seenWhileStreaming.push(tag);
        }).observe(document.getElementById("conversation") as HTMLElement, {
          subtree: true,
          childList: true,
        });
      });
      await ask(page, "Show it as a table, with a code sample");
      await waitForState(page, ["done"]);
      expect(
        (
          await page.evaluate(
            () => (window as unknown as { seenWhileStreaming: string[] }).seenWhileStreaming,
          )
        ).sort(),
      ).toEqual(["li", "pre", "td"]);

      const answer = answerText(page);
      expect(await answer.locator("h2").textContent()).toBe("Three ways it saves money");
      expect(await answer.locator("strong").first().textContent()).toBe("every");
      expect(await answer.locator("em").first().textContent()).toBe("before");
      expect(await answer.locator("ul > li").count()).toBe(3);
      expect(await answer.locator("li code").first().textContent()).toBe("max_tokens");
      expect(await answer.locator("th").allTextContents()).toEqual(["Limit", "Default"]);
      expect(await answer.locator("td").allTextContents()).toEqual([
        "Anonymous per hour",
        "20",
        "Anonymous in total",
        "100",
      ]);
      expect(await answer.locator("td").nth(1).getAttribute("align")).toBe("right");
      const link = answer.locator("a");
      expect(await link.getAttribute("href")).toBe("https://example.com/docs");
      expect(await link.getAttribute("rel")).toBe("noopener noreferrer nofollow");
      expect(await link.getAttribute("target")).toBe("_blank");
      expect(await answer.locator("pre code").textContent()).toBe(CODE);
      expect(await answer.locator(".code-lang").textContent()).toBe("js");

      // Syntax colours arrive a moment later, with the highlighter's bundle.
      await answer.locator("pre code span.hljs-keyword").first().waitFor();
      await page.locator("#prompt").focus();
      await page.screenshot({ path: join(ARTIFACTS, "magic-box.png") });
      await page.emulateMedia({ colorScheme: "dark" });
      await page.screenshot({ path: join(ARTIFACTS, "chat-dark.png") });
      await page.emulateMedia({ colorScheme: "light" });
      // The same chat on a phone, scrolled to the code, for the README.
      await page.setViewportSize({ width: 390, height: 844 });
      await answer.locator(".code-block").scrollIntoViewIfNeeded();
      await page.screenshot({ path: join(ARTIFACTS, "magic-box-phone.png") });
      await page.emulateMedia({ colorScheme: "dark" });
      await page.screenshot({ path: join(ARTIFACTS, "magic-box-phone-dark.png") });
      await page.emulateMedia({ colorScheme: "light" });
      await page.setViewportSize({ width: 1280, height: 1000 });

      const codeCopy = answer.getByRole("button", { name: "Copy js code" });
      await codeCopy.click();
      await expect.poll(() => page.evaluate(() => navigator.clipboard.readText())).toBe(CODE);
      // The button now reads, and is named, "Copied" (for 1.5 s).
      expect(await answer.getByRole("button", { name: "Copied js code" }).count()).toBe(1);
      expect(await page.locator("#status").textContent()).toBe("Code copied to the clipboard.");
      await lastTurn(page).getByRole("button", { name: "Copy answer" }).click();
      await expect
        .poll(() => page.evaluate(() => navigator.clipboard.readText()))
        .toBe(MARKDOWN_ANSWER);
      // The finished answer was handed to the live region for screen readers, as text.
      const announced = (await page.locator("#announce").textContent()) ?? "";
      expect(announced.startsWith("Magic Box answered: Three ways it saves money\n")).toBe(true);
      expect(announced).toContain("\njs code: const cap = 0.02;");
      expect(announced).not.toContain("Copy");
      expect(await page.locator("#announce").getAttribute("aria-live")).toBe("polite");
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("runs nothing of a hostile answer and adds no element outside the allowed set", async () => {
    const { page, problems, close } = await rig.open();
    try {
      const requested: string[] = [];
      page.on("request", (r) => requested.push(new URL(r.url()).pathname));
      const hostile = [
        "Inline <img src=x onerror=\"window.__pwned='img'\"> and <b onmouseover=\"window.__pwned='b'\">bold</b>.",
        "",
        "<script>window.__pwned='script'</script>",
        "",
        "[click me](javascript:window.__pwned='link') [data](data:text/html,hi) <javascript:alert(1)> [ok](https://example.com/x)",
        "",
        '**strong <a href="javascript:window.__pwned=\'a\'">tag</a>** <iframe src="https://example.com/"></iframe>',
        "",
        '<div onclick="window.__pwned=\'div\'" style="position:fixed;inset:0">block html</div>',
        "",
        "![tracker](https://example.com/pixel.png) <svg onload=\"window.__pwned='svg'\"></svg>",
        "",
        '<style>body{display:none}</style><form action="https://example.com/"><input name=q></form>',
        "",
        "- item <img src=x onerror=\"window.__pwned='li'\">",
        "",
        "| a | <img src=x onerror=\"window.__pwned='td'\"> |",
        "| - | - |",
        "| <script>window.__pwned='cell'</script> | 2 |",
      ].join("\n");
      rig.upstream().script("Be hostile", {
        text: hostile,
        reasoning: "Thinking <img src=x onerror=\"window.__pwned='reasoning'\">",
      });
      await ask(page, "Be hostile");
      await waitForState(page, ["done"]);

      const report = await page.evaluate(() => {
        const turn = document.querySelector(".turn:last-of-type") as HTMLElement;
        const elements = Array.from(turn.querySelectorAll(".answer-text *"));
        return {
          pwned: (window as unknown as { __pwned?: string }).__pwned ?? null,
          tags: elements.map((e) => {
            const tag = e.tagName.toLowerCase();
            return ["div", "span", "button"].includes(tag) ? `${tag}.${e.className}` : tag;
          }),
          attributes: elements.flatMap((e) => e.getAttributeNames()),
          links: Array.from(turn.querySelectorAll(".answer-text a")).map((a) => ({
            href: a.getAttribute("href"),
            rel: a.getAttribute("rel"),
          })),
          reasoningElements: turn.querySelectorAll(".reasoning-text *").length,
          text: turn.querySelector(".answer-text")?.textContent ?? "",
          bodyShown: getComputedStyle(document.body).display !== "none",
        };
      });
      expect(report.pwned).toBeNull();
      for (const tag of report.tags) expect(ALLOWED, tag).toContain(tag);
      const attributes = [
        "href",
        "rel",
        "target",
        "align",
        "class",
        "type",
        "aria-label",
        "aria-hidden",
        "tabindex",
        "role",
        "data-lang",
      ];
      for (const name of report.attributes) expect(attributes, name).toContain(name);
      for (const a of report.links) {
        if (a.href === null) continue;
        expect(a.href).toMatch(/^https:\/\/example\.com\//);
        expect(a.rel).toBe("noopener noreferrer nofollow");
      }
      // The only live link is the https one; the image became a link to its address.
      expect(report.links.filter((a) => a.href).map((a) => a.href)).toEqual([
        "https://example.com/x",
        "https://example.com/pixel.png",
      ]);
      expect(report.reasoningElements).toBe(0);
      // Raw HTML is shown as the text it is.
      expect(report.text).toContain("<script>window.__pwned='script'</script>");
      expect(report.text).toContain("<img src=x onerror=");
      expect(report.bodyShown).toBe(true);
      expect(requested.filter((p) => p.endsWith("/x") || p.includes("pixel"))).toEqual([]);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("says a cost is at most what it shows when the provider sent no count of its own", async () => {
    const { page, problems, close } = await rig.open();
    try {
      rig.upstream().script("Count to three.", { text: "One, two, three." });
      rig.upstream().script("And again?", { text: "One, two, three.", noUsage: true });
      await ask(page, "Count to three.");
      await waitForState(page, ["done"]);
      const cost = () => lastTurn(page).locator('[data-metric="cost"]').textContent();
      expect(await cost()).toMatch(/^\$0\.\d{6}$/);
      await ask(page, "And again?");
      await waitForState(page, ["done"]);
      expect(await cost()).toMatch(/^at most \$0\.\d{6}$/);
      expect(await lastTurn(page).locator(".figures-line").textContent()).toContain("at most $");
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("shows the reasoning collapsed and apart from the answer, and never sends it back", async () => {
    const { page, problems, close } = await rig.open();
    try {
      const bodies = streamBodies(page);
      rig.upstream().script("Which colour is the sky?", {
        reasoning: "The sky scatters short wavelengths, so: blue.",
        text: "**Blue.**",
      });
      await ask(page, "Which colour is the sky?");
      await waitForState(page, ["done"]);
      const reasoning = lastTurn(page).locator("details.reasoning");
      expect(await reasoning.isVisible()).toBe(true);
      expect(await reasoning.getAttribute("open")).toBeNull();
      expect(await reasoning.locator("summary").textContent()).toBe("Reasoning");
      expect(await reasoning.locator(".reasoning-text").isVisible()).toBe(false);
      expect(await reasoning.locator(".reasoning-text").textContent()).toBe(
        "The sky scatters short wavelengths, so: blue.",
      );
      expect(await answerText(page).textContent()).toBe("Blue.");
      await reasoning.locator("summary").click();
      expect(await reasoning.locator(".reasoning-text").isVisible()).toBe(true);

      await ask(page, "Why?");
      await waitForState(page, ["done"]);
      expect(bodies[1]?.messages[1]).toEqual({ role: "assistant", content: "**Blue.**" });
      await page.reload();
      await page.locator('#quota[data-loaded="true"]').waitFor();
      expect(await turns(page).first().locator(".reasoning-text").textContent()).toBe(
        "The sky scatters short wavelengths, so: blue.",
      );
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("keeps a stopped answer in the history, marked, and sends it as far as it got", async () => {
    const { page, problems, close } = await rig.open();
    try {
      const bodies = streamBodies(page);
      const slow = "A long answer, word by word, ".repeat(20);
      rig.upstream().script("Tell me a long story", { text: slow, chunk: 5, delayMs: 40 });
      await ask(page, "Tell me a long story");
      await page.waitForFunction(
        () =>
          (document.querySelector(".turn:last-of-type .answer-text")?.textContent?.length ?? 0) >=
          20,
      );
      await page.getByRole("button", { name: "Stop" }).click();
      await waitForState(page, ["stopped"]);
      expect(await lastTurn(page).locator(".badge").textContent()).toBe("Stopped");
      expect(await page.evaluate(() => document.activeElement?.id)).toBe("prompt");

      await ask(page, "Go on");
      await waitForState(page, ["done"]);
      const partial = bodies[1]?.messages[1];
      expect(partial?.role).toBe("assistant");
      expect(partial?.content.length).toBeGreaterThanOrEqual(20);
      expect(partial?.content.length).toBeLessThan(slow.length);
      expect(slow.startsWith(partial?.content ?? "-")).toBe(true);
      await page.reload();
      await page.locator('#quota[data-loaded="true"]').waitFor();
      expect(await turns(page).first().getAttribute("data-state")).toBe("stopped");
      expect(await turns(page).first().locator(".badge").textContent()).toBe("Stopped");
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });
});
