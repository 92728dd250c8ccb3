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

  it("shows what is left of the day's budget, and explains budget_exceeded and budget_exhausted with a countdown", async () => {
    const { page, problems, close } = await rig.open({ statuses: [429, 503] });
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
    const { page, problems, close } = await rig.open({
      context: {
        viewport: { width: 390, height: 844 },
        isMobile: true,
        hasTouch: true,
        ...CLIPBOARD,
      },
      statuses: [429],
    });
    try {
      rig.upstream().script("Show me the limits", { text: MARKDOWN_ANSWER });
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
