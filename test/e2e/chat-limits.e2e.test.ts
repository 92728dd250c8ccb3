/**
 * @module Browser tests of the Magic Box at its limits: turns left out of a long chat, the model
 * menu per caller, the day's budget and its refusals, a phone screen with a limit banner.
 * Chromium against a real `wrangler dev` whose upstream the test scripts (see chat-setup.ts).
 */
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { ARTIFACTS, ask, screenshot, waitForState } from "./browser";
import {
  CLIPBOARD,
  CONVERSATION_KEY,
  lastTurn,
  MARKDOWN_ANSWER,
  SUPABASE_JWT_SECRET,
  streamBodies,
  turns,
  useChatRig,
} from "./chat-setup";

const rig = useChatRig();

describe("Magic Box limits", () => {
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
    const { page, problems, close } = await rig.open({
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
    const registry = (await (await fetch(`${rig.server().url}/api/v1/models`)).json()) as {
      default: string;
      models: { id: string; anonymous: boolean }[];
    };
    const { page, problems, close } = await rig.open();
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

  it("shows what is left of the day's budget, takes each answer's exact cost off it, and explains budget_exhausted and budget_exceeded with a countdown", async () => {
    const { page, problems, close } = await rig.open({ statuses: [429, 503] });
    try {
      const budget = page.locator("#budget");
      const leftMicro = async () => Number(await budget.getAttribute("data-left-micro"));
      // The server's own answer (BUDGET_ANON_DAILY_USD, 0.05 by default), nothing spent yet.
      expect(await budget.textContent()).toMatch(
        /^Budget: \$0\.05 of \$0\.05 left today · renews in (\d+ h( \d+ min)?|\d+ min)$/,
      );
      const refresh = () =>
        page.evaluate(() =>
          (
            window as unknown as { magicBox: { clearSession(): Promise<void> } }
          ).magicBox.clearSession(),
        );

      // A shared budget spent (as the server answers it): the banner says whose, and counts down.
      await page.route("**/api/v1/stream", (route) =>
        route.fulfill({
          status: 503,
          headers: { "Retry-After": "2" },
          json: {
            error_code: "budget_exhausted",
            detail: "the hourly budget for anonymous use is spent",
            retry_after: 2,
          },
        }),
      );
      await ask(page, "While the service is at its limit");
      await waitForState(page, ["failed"]);
      expect(await lastTurn(page).getAttribute("data-error-code")).toBe("budget_exhausted");
      expect(await page.locator("#notice-text").textContent()).toBe(
        "The service's spending limit is reached. The hourly budget for anonymous use is spent. That budget is shared by everyone using the service; you can send again when the countdown ends.",
      );
      expect(await page.locator("#countdown").textContent()).toMatch(
        /^Send is available again in [12] s\.$/,
      );
      expect(await page.locator("#send").isDisabled()).toBe(true);
      await page.unroute("**/api/v1/stream");
      await page.waitForFunction(
        () => !(document.getElementById("send") as HTMLButtonElement).disabled,
        undefined,
        { timeout: 5_000 },
      );

      // Expensive answers for real (the upstream reports up to 30,000 output tokens, never more
      // than the max_tokens it was sent), until the caller's own budget refuses.
      let refused = false;
      for (let i = 1; i <= 8 && !refused; i++) {
        const before = await leftMicro();
        rig
          .upstream()
          .script(`Expensive answer ${i}`, { text: "A costly answer.", completionTokens: 30_000 });
        await ask(page, `Expensive answer ${i}`);
        await waitForState(page, ["done", "failed"]);
        refused = (await lastTurn(page).getAttribute("data-state")) === "failed";
        if (refused) break;
        const after = await leftMicro();
        expect(after).toBeLessThan(before);
        // What the page took off is exactly what the server counted.
        await refresh();
        expect(await leftMicro()).toBe(after);
      }
      expect(refused).toBe(true);
      expect(await lastTurn(page).getAttribute("data-error-code")).toBe("budget_exceeded");
      const noticeText = (await page.locator("#notice-text").textContent()) ?? "";
      expect(noticeText.startsWith("Your budget is used up.")).toBe(true);
      expect(noticeText.endsWith("You can send again when the countdown ends.")).toBe(true);
      // The window is the UTC day: the wait is shown as h:mm:ss or m:ss.
      expect(await page.locator("#countdown").textContent()).toMatch(
        /^Send is available again in (\d+:)?\d+:\d\d\.$/,
      );
      expect(await page.locator("#send").isDisabled()).toBe(true);
      expect(await leftMicro()).toBeLessThan(1_000);
      await screenshot(page, "chat-budget-exceeded.png");
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  }, 60_000);

  it("keeps most of a 390x844 screen for the conversation, even with a limit banner", async () => {
    const { page, problems, close } = await rig.open({
      context: {
        viewport: { width: 390, height: 844 },
        isMobile: true,
        hasTouch: true,
        ...CLIPBOARD,
      },
      statuses: [429],
      prepareContext: (context) => context.clock.install(),
    });
    try {
      // The page's Date stands still from here (its timers keep running), so the banner's
      // countdown cannot run out however short the server's Retry-After is.
      await page.clock.setFixedTime(await page.evaluate(() => Date.now()));
      rig.upstream().script("Show me the limits", { text: MARKDOWN_ANSWER });
      const hourly = Number(
        /of (\d+) streams left this hour/.exec(
          (await page.locator("#quota").textContent()) ?? "",
        )?.[1],
      );
      expect(hourly).toBeGreaterThan(0);
      // Spend the anonymous hourly quota for real, then ask until the server refuses. wrangler
      // dev counts on the wall clock, and the turn of an hour frees units of a spent sliding
      // window, so the refusal may come later than the ask after the quota; it comes at the
      // latest after 2 × hourly asks (at most that many pass in one window).
      for (let i = 1; i < hourly; i++) {
        await ask(page, `Question ${i}`);
        await waitForState(page, ["done"]);
      }
      await ask(page, "Show me the limits");
      await waitForState(page, ["done"]);
      let asked = hourly;
      for (;;) {
        asked += 1;
        expect(asked).toBeLessThanOrEqual(2 * hourly + 1);
        const answered = page.waitForResponse(
          (r) => new URL(r.url()).pathname === "/api/v1/stream",
        );
        await ask(page, "One too many");
        const status = (await answered).status();
        if (status === 429) break;
        expect(status).toBe(200);
        await waitForState(page, ["done"]);
      }
      expect(asked).toBeGreaterThan(hourly);
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
