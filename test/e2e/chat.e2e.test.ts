/**
 * @module Browser tests of the Magic Box as a chat: Chromium against a real `wrangler dev` whose
 * upstream is a loopback OpenAI-compatible server the test scripts (what the model answers,
 * and every request the gateway sent it). Default limits, fresh state.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { join } from "node:path";
import { SignJWT } from "jose";
import type { Browser, Page, Request } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ARTIFACTS,
  ask,
  launchChromium,
  type Opened,
  openPage,
  screenshot,
  waitForState,
} from "./browser";
import { type ChatUpstream, startChatUpstream } from "./chat-upstream";
import { type DevServer, startWranglerDev } from "./dev-server";

const SUPABASE_JWT_SECRET = randomBytes(32).toString("base64url");
const CONVERSATION_KEY = "magicBox.conversation";
const CLIPBOARD = { permissions: ["clipboard-read", "clipboard-write"] };

let upstream: ChatUpstream | undefined;
let server: DevServer | undefined;
let browser: Browser | undefined;
/** Why setup failed: every test rethrows it, so a missing browser FAILS them (not skipped). */
let setupError: Error | undefined;

beforeAll(async () => {
  try {
    upstream = await startChatUpstream();
    const [dev, launched] = await Promise.allSettled([
      startWranglerDev({
        OPENAI_API_KEY: "sk-e2e-not-a-real-key",
        OPENAI_BASE_URL: upstream.baseUrl,
        SECRET_KEY: randomBytes(32).toString("base64url"),
        SUPABASE_JWT_SECRET,
        // Every test opens a fresh profile and so mints a token; keep room for all of them.
        ANON_SESSIONS_PER_IP_HOURLY: "40",
      }),
      launchChromium(),
    ]);
    if (dev.status === "fulfilled") server = dev.value;
    if (launched.status === "fulfilled") browser = launched.value;
    if (dev.status === "rejected") throw dev.reason;
    if (launched.status === "rejected") throw launched.reason;
  } catch (e) {
    setupError = e instanceof Error ? e : new Error(String(e));
  }
}, 60_000);

afterAll(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
  await upstream?.close();
});

function open(options: Parameters<typeof openPage>[2] = {}): Promise<Opened> {
  if (setupError) throw setupError;
  if (!browser || !server || !upstream) throw new Error("setup did not finish");
  return openPage(browser, `${server.url}/magic/`, options);
}

/** The JSON bodies of the page's POST /api/v1/stream requests, in order. */
function streamBodies(
  page: Page,
): { messages: { role: string; content: string }[]; model?: string }[] {
  const bodies: ReturnType<typeof streamBodies> = [];
  page.on("request", (r: Request) => {
    if (r.method() === "POST" && new URL(r.url()).pathname === "/api/v1/stream")
      bodies.push(r.postDataJSON());
  });
  return bodies;
}

const turns = (page: Page) => page.locator(".turn");
const lastTurn = (page: Page) => page.locator(".turn").last();
const answerText = (page: Page) => lastTurn(page).locator(".answer-text");
const stored = (page: Page) => page.evaluate((k) => localStorage.getItem(k), CONVERSATION_KEY);

const MARKDOWN_ANSWER = [
  "## Three ways it saves money",
  "",
  "The gateway keeps **every** answer under a cap, *before* it is sent:",
  "",
  "- a hold of the worst case at admission",
  "- `max_tokens` derived from the cap",
  "- a meter that stops the stream at the cap",
  "",
  "| Limit | Default |",
  "| --- | ---: |",
  "| Anonymous per hour | 20 |",
  "| Anonymous in total | 100 |",
  "",
  "```js",
  "const cap = 0.02; // USD",
  'console.log("cap:", cap);',
  "```",
  "",
  "See [the docs](https://example.com/docs).",
].join("\n");
const CODE = 'const cap = 0.02; // USD\nconsole.log("cap:", cap);';

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
  "div.table-wrap",
]);

describe("Magic Box conversations", () => {
  it("carries the first turn in the second request, keeps the chat over a reload, and New chat clears it", async () => {
    const { page, problems, close } = await open();
    try {
      const bodies = streamBodies(page);
      upstream?.script("Name two colours.", { text: "1. Red\n2. Blue" });
      upstream?.script("And a third one?", { text: "Green, after **red** and **blue**." });
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
      const seen = upstream?.requests.at(-1)?.messages.filter((m) => m.role !== "system");
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
      expect(await stored(page)).toBeNull();
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
    const { page, problems, close } = await open({
      context: { ...CLIPBOARD, viewport: { width: 1000, height: 1100 } },
    });
    try {
      upstream?.script("How does the gateway keep costs down?", {
        text: "By **holding** the worst case, *metering* each token and capping:\n\n1. hold at admission\n2. meter while streaming\n3. stop at the cap",
      });
      upstream?.script("Show it as a table, with a code sample", {
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

      await page.locator("#prompt").focus();
      await page.screenshot({ path: join(ARTIFACTS, "magic-box.png") });
      await page.emulateMedia({ colorScheme: "dark" });
      await page.screenshot({ path: join(ARTIFACTS, "chat-dark.png") });
      await page.emulateMedia({ colorScheme: "light" });

      const codeCopy = answer.getByRole("button", { name: "Copy js code" });
      await codeCopy.click();
      await expect.poll(() => page.evaluate(() => navigator.clipboard.readText())).toBe(CODE);
      expect(await codeCopy.textContent()).toBe("Copied");
      expect(await page.locator("#status").textContent()).toBe("Code copied to the clipboard.");
      await lastTurn(page).getByRole("button", { name: "Copy answer" }).click();
      await expect
        .poll(() => page.evaluate(() => navigator.clipboard.readText()))
        .toBe(MARKDOWN_ANSWER);
      // The finished answer was handed to the live region for screen readers, as text.
      const announced = (await page.locator("#announce").textContent()) ?? "";
      expect(announced.startsWith("Magic Box answered: Three ways it saves money")).toBe(true);
      expect(await page.locator("#announce").getAttribute("aria-live")).toBe("polite");
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("runs nothing of a hostile answer and adds no element outside the allowed set", async () => {
    const { page, problems, close } = await open();
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
      upstream?.script("Be hostile", {
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

  it("shows the reasoning collapsed and apart from the answer, and never sends it back", async () => {
    const { page, problems, close } = await open();
    try {
      const bodies = streamBodies(page);
      upstream?.script("Which colour is the sky?", {
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

  it("leaves the oldest turns out when the chat no longer fits the limits, and says so", async () => {
    // 40 answered turns of about 1,500 characters: 80 messages and 60,000 characters.
    const seeded = Array.from({ length: 40 }, (_, i) => ({
      user: `Question ${i}`,
      answer: `Answer ${i}: ${"lorem ipsum ".repeat(125)}`,
      reasoning: "",
      state: "done",
      note: "",
      badge: "",
      metrics: [],
      streamId: "",
      errorCode: "",
      leftOut: 0,
    }));
    const { page, problems, close } = await open({
      storage: { [CONVERSATION_KEY]: JSON.stringify({ v: 1, turns: seeded }) },
    });
    try {
      const bodies = streamBodies(page);
      expect(await turns(page).count()).toBe(40);
      await ask(page, "One more question");
      await waitForState(page, ["done"]);
      const messages = bodies[0]?.messages ?? [];
      const chars = messages.reduce((n, m) => n + [...m.content].length, 0);
      expect(messages.length).toBeLessThanOrEqual(50);
      expect(chars).toBeLessThanOrEqual(32768);
      // Whole turns are left out, oldest first; what is kept is the newest, in order.
      const kept = (messages.length - 1) / 2;
      expect(messages.slice(0, -1)).toEqual(
        seeded.slice(40 - kept).flatMap((t) => [
          { role: "user", content: t.user },
          { role: "assistant", content: t.answer },
        ]),
      );
      expect(messages.at(-1)).toEqual({ role: "user", content: "One more question" });
      const leftOut = 80 - (messages.length - 1);
      expect(leftOut).toBeGreaterThan(0);
      const note = lastTurn(page).locator(".context-note");
      expect(await note.isVisible()).toBe(true);
      expect(await note.textContent()).toContain(`The ${leftOut} oldest messages of this chat`);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("lists the models of /api/v1/models: an anonymous caller sees only those it may use", async () => {
    const registry = (await (await fetch(`${server?.url}/api/v1/models`)).json()) as {
      default: string;
      models: { id: string; anonymous: boolean }[];
    };
    const { page, problems, close } = await open();
    try {
      const bodies = streamBodies(page);
      const options = () =>
        page
          .locator("#model option")
          .evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value));
      const anonymousIds = registry.models.filter((m) => m.anonymous).map((m) => m.id);
      await expect.poll(options).toEqual(anonymousIds);
      expect(anonymousIds.length).toBeLessThan(registry.models.length);
      expect(await page.locator("#model").inputValue()).toBe(registry.default);

      const token = await new SignJWT({ role: "authenticated", is_anonymous: false })
        .setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .setSubject(randomUUID())
        .setAudience("authenticated")
        .setIssuedAt()
        .setExpirationTime(Math.floor(Date.now() / 1000) + 3600)
        .sign(new TextEncoder().encode(SUPABASE_JWT_SECRET));
      await page.evaluate(
        (t) =>
          (
            window as unknown as { magicBox: { setSession(t: string): Promise<void> } }
          ).magicBox.setSession(t),
        token,
      );
      expect(await options()).toEqual(registry.models.map((m) => m.id));
      const other = registry.models.find((m) => !m.anonymous)?.id ?? "";
      await page.locator("#model").selectOption(other);
      await ask(page, "Which model are you?");
      await waitForState(page, ["done"]);
      expect(bodies[0]?.model).toBe(other);
      expect(await lastTurn(page).locator('[data-metric="model"]').textContent()).toBe(other);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("shows what is left of the day's budget, and explains budget_exceeded and budget_exhausted with a countdown", async () => {
    const { page, problems, close } = await open({ statuses: [429, 503] });
    try {
      // The budget block of GET /api/v1/usage, added to the server's real answer.
      let budget: Record<string, unknown> | null = null;
      await page.route("**/api/v1/usage", async (route) => {
        const res = await route.fetch();
        const json = { ...(await res.json()), budget };
        await route.fulfill({ response: res, json });
      });
      const refresh = () =>
        page.evaluate(() =>
          (
            window as unknown as { magicBox: { clearSession(): Promise<void> } }
          ).magicBox.clearSession(),
        );
      await refresh();
      expect(await page.locator("#budget").isHidden()).toBe(true);

      const reset = Math.floor(Date.now() / 1000) + 3 * 3600 + 120;
      budget = {
        limit_usd: 0.05,
        spent_usd: 0.0125,
        held_usd: 0,
        left_usd: 0.0375,
        reset,
        window: "day",
      };
      await refresh();
      expect(await page.locator("#budget").textContent()).toMatch(
        /^Budget: \$0\.0375 of \$0\.05 left today · renews in 3 h [12] min$/,
      );
      // A real answer: what it cost comes off what is left, exactly (µUSD).
      await ask(page, "Spend a little");
      await waitForState(page, ["done"]);
      const cost = Number(
        ((await lastTurn(page).locator('[data-metric="cost"]').textContent()) ?? "").slice(1),
      );
      expect(cost).toBeGreaterThan(0);
      expect(Number(await page.locator("#budget").getAttribute("data-left-micro"))).toBe(
        37_500 - Math.round(cost * 1e6),
      );

      // The refusals, as the server sends them before a stream (JSON with Retry-After).
      const refusals = [
        { status: 429, code: "budget_exceeded", detail: "daily budget of $0.05 reached", wait: 3 },
        {
          status: 503,
          code: "budget_exhausted",
          detail: "the hourly budget for anonymous use is spent",
          wait: 2,
        },
      ];
      let served = 0;
      await page.route("**/api/v1/stream", (route) => {
        const r = refusals[served++];
        if (!r) return route.abort();
        return route.fulfill({
          status: r.status,
          headers: { "Retry-After": String(r.wait) },
          json: { error_code: r.code, detail: r.detail, retry_after: r.wait },
        });
      });
      budget = { ...budget, spent_usd: 0.05, left_usd: 0 };
      await ask(page, "Over budget");
      await waitForState(page, ["failed"]);
      expect(await lastTurn(page).getAttribute("data-error-code")).toBe("budget_exceeded");
      const noticeText = (await page.locator("#notice-text").textContent()) ?? "";
      expect(noticeText).toContain("Your budget is used up.");
      expect(noticeText).toContain("Daily budget of $0.05 reached.");
      expect(await page.locator("#countdown").textContent()).toMatch(
        /^Send is available again in [123] s\.$/,
      );
      expect(await page.locator("#send").isDisabled()).toBe(true);
      await expect
        .poll(() => page.locator("#budget").textContent())
        .toMatch(/^Budget: \$0\.00 of \$0\.05 left today/);
      await screenshot(page, "chat-budget-exceeded.png");
      await page.waitForFunction(
        () => !(document.getElementById("send") as HTMLButtonElement).disabled,
        undefined,
        { timeout: 5_000 },
      );
      expect(await page.locator("#notice").isHidden()).toBe(true);

      await page.locator("#send").click();
      await waitForState(page, ["failed"]);
      expect(await lastTurn(page).getAttribute("data-error-code")).toBe("budget_exhausted");
      expect(await page.locator("#notice-text").textContent()).toContain(
        "The service's spending limit is reached.",
      );
      expect(await page.locator("#countdown").textContent()).toMatch(
        /^Send is available again in [12] s\.$/,
      );
      expect(served).toBe(2);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("keeps most of a 390x844 screen for the conversation, even with a limit banner", async () => {
    // The hourly quota's buckets end on the hour: start well before it ends.
    const toHour = 3_600_000 - (Date.now() % 3_600_000);
    if (toHour < 60_000) await new Promise((r) => setTimeout(r, toHour + 1_000));
    const { page, problems, close } = await open({
      context: {
        viewport: { width: 390, height: 844 },
        isMobile: true,
        hasTouch: true,
        ...CLIPBOARD,
      },
      statuses: [429],
    });
    try {
      upstream?.script("Show me the limits", { text: MARKDOWN_ANSWER });
      const hourly = Number(
        /of (\d+) streams left this hour/.exec(
          (await page.locator("#quota").textContent()) ?? "",
        )?.[1],
      );
      expect(hourly).toBeGreaterThan(0);
      // Spend the anonymous hourly quota for real, then one more.
      for (let i = 1; i < hourly; i++) {
        await ask(page, `Question ${i}`);
        await waitForState(page, ["done"]);
      }
      await ask(page, "Show me the limits");
      await waitForState(page, ["done"]);
      await ask(page, "One too many");
      await waitForState(page, ["failed"]);
      expect(await lastTurn(page).getAttribute("data-error-code")).toBe("quota_exceeded");
      expect(await page.locator("#notice").isVisible()).toBe(true);
      // Show the markdown answer, as a reader scrolling back would.
      await turns(page)
        .nth(hourly - 1)
        .scrollIntoViewIfNeeded();
      const share = await page.evaluate(
        () =>
          (document.getElementById("conversation") as HTMLElement).getBoundingClientRect().height /
          window.innerHeight,
      );
      expect(share).toBeGreaterThan(0.55);
      expect(
        await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
      ).toBe(true);
      expect(await page.evaluate(() => document.body.scrollHeight <= window.innerHeight)).toBe(
        true,
      );
      await page.screenshot({ path: join(ARTIFACTS, "chat-phone.png") });
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  }, 60_000);
});
