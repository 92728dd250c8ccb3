/**
 * @module Browser tests of the Magic Box page's sessions and limits: the hourly quota's notice
 * and countdown, an anonymous token renewed before use or after a 401, a Supabase session used
 * instead, and (last, over every page this file opened) a phone-sized screen and no token ever
 * in a URL. Setup: ./magic-setup.ts.
 */
import { randomUUID } from "node:crypto";
import { SignJWT } from "jose";
import type { Page, Response as PlaywrightResponse } from "playwright-core";
import { describe, expect, it } from "vitest";
import { ask, waitForState } from "./browser";
import {
  ANON_KEY,
  demoAnswer,
  formatWait,
  HOURLY_QUOTA,
  lastTurn,
  openMagic,
  SUPABASE_JWT_SECRET,
  screenshot,
  seen,
  useMagicServer,
} from "./magic-setup";

useMagicServer();

const nowS = () => Math.floor(Date.now() / 1000);

/** Appends "METHOD /path status" for each API response of `page`. */
function recordApiStatuses(page: Page, into: string[]): void {
  page.on("response", (r) => {
    const path = new URL(r.url()).pathname;
    // The model registry is read once at load, without a token: not part of the session's story.
    if (path.startsWith("/api/") && path !== "/api/v1/models")
      into.push(`${r.request().method()} ${path} ${r.status()}`);
  });
}

function supabaseToken(expiresIn = 3600): Promise<string> {
  return new SignJWT({ role: "authenticated", is_anonymous: false })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(randomUUID())
    .setAudience("authenticated")
    .setIssuedAt()
    .setExpirationTime(nowS() + expiresIn)
    .sign(new TextEncoder().encode(SUPABASE_JWT_SECRET));
}

describe("Magic Box page", () => {
  it("c. after the hourly quota is spent, the next send shows which limit and a countdown, and Send is disabled", async () => {
    const { page, problems, close } = await openMagic({
      statuses: [429],
      prepareContext: (context) => context.clock.install(),
    });
    try {
      // The page's Date stands still from here (its timers keep running): its countdown moves
      // only when the test moves the clock, however short the server's Retry-After is.
      const pinned = await page.evaluate(() => Date.now());
      await page.clock.setFixedTime(pinned);
      // Spend the hourly quota: ask until the server refuses. wrangler dev counts on the wall
      // clock, and the turn of an hour frees units of a spent sliding window, so the refusal may
      // come later than after HOURLY_QUOTA asks; it comes at the latest after 2 × HOURLY_QUOTA
      // (at most that many pass in one window), and always right after an answer that left none.
      let refusal: PlaywrightResponse | undefined;
      let asked = 0;
      let quotaBefore = "";
      while (!refusal) {
        asked += 1;
        expect(asked).toBeLessThanOrEqual(2 * HOURLY_QUOTA + 1);
        quotaBefore = (await page.locator("#quota").textContent()) ?? "";
        const answered = page.waitForResponse(
          (r) => new URL(r.url()).pathname === "/api/v1/stream",
        );
        await ask(page, `Quota question number ${asked}`);
        const res = await answered;
        if (res.status() === 429) refusal = res;
        else {
          expect(res.status()).toBe(200);
          await waitForState(page, ["done"]);
        }
      }
      expect(asked).toBeGreaterThan(HOURLY_QUOTA);
      expect(quotaBefore).toContain(`0 of ${HOURLY_QUOTA} streams left this hour`);
      await waitForState(page, ["failed"]);
      expect(await lastTurn(page).getAttribute("data-error-code")).toBe("quota_exceeded");
      expect(await lastTurn(page).locator(".badge").textContent()).toBe("Not answered");

      const notice = page.locator("#notice");
      expect(await notice.isVisible()).toBe(true);
      const noticeText = (await page.locator("#notice-text").textContent()) ?? "";
      expect(noticeText).toContain("Quota used up.");
      expect(noticeText).toContain(`hourly quota reached: ${HOURLY_QUOTA} streams per hour`);
      // The countdown starts at the server's Retry-After, in the page's words.
      const retryAfter = Number(await refusal.headerValue("retry-after"));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      const countdown = page.locator("#countdown");
      expect(await countdown.textContent()).toBe(
        `Send is available again in ${formatWait(retryAfter)}.`,
      );
      expect(await page.locator("#send").isDisabled()).toBe(true);
      // The unanswered text is given back, and Enter does not send while the countdown runs.
      expect(await page.locator("#prompt").inputValue()).toBe(`Quota question number ${asked}`);
      await page.locator("#prompt").press("Enter");
      expect(await page.locator(".turn").count()).toBe(asked);
      await screenshot(page, "c-quota-countdown.png");
      // The countdown is live and ends with the Retry-After: with the clock paused, the test
      // moves it to a millisecond before the end and then to the end, and fires the page's timers.
      await page.clock.pauseAt(pinned);
      await page.clock.setFixedTime(pinned + retryAfter * 1000 - 1);
      await page.clock.runFor(1_000);
      expect(await countdown.textContent()).toBe("Send is available again in 1 s.");
      expect(await page.locator("#send").isDisabled()).toBe(true);
      await page.clock.setFixedTime(pinned + retryAfter * 1000);
      await page.clock.runFor(1_000);
      expect(await notice.isVisible()).toBe(false);
      expect(await page.locator("#send").isDisabled()).toBe(false);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  }, 60_000);

  it("e1. an expired stored token is renewed before use; a refused one is renewed after its 401 and the request retried", async () => {
    // Expired in storage: renewed before any request uses it, so no 401 at all.
    const expired = { token: "expired.not-a.token", expires_at: nowS() - 60 };
    const statusesOne: string[] = [];
    const one = await openMagic({
      storage: { [ANON_KEY]: JSON.stringify(expired) },
      beforeGoto: (p) => recordApiStatuses(p, statusesOne),
    });
    try {
      expect(statusesOne).toEqual(["POST /api/v1/anon_session 200", "GET /api/v1/usage 200"]);
      const stored = JSON.parse(
        (await one.page.evaluate((k) => localStorage.getItem(k), ANON_KEY)) ?? "null",
      );
      expect(stored.token).not.toBe(expired.token);
      expect(stored.expires_at).toBeGreaterThan(nowS() + 3600);
      expect(one.problems).toEqual([]);
    } finally {
      await one.close();
    }

    // Garbage that looks valid for an hour: the server refuses it, the page renews and retries.
    const garbage = { token: "garbage.garbage.garbage", expires_at: nowS() + 3600 };
    const statuses: string[] = [];
    const two = await openMagic({
      storage: { [ANON_KEY]: JSON.stringify(garbage) },
      statuses: [401],
      beforeGoto: (p) => recordApiStatuses(p, statuses),
    });
    const { page } = two;
    try {
      // The stored token goes bad again after load: the stream's own 401 is retried once.
      await page.evaluate(
        ([k, v]) => localStorage.setItem(k as string, v as string),
        [ANON_KEY, JSON.stringify(garbage)],
      );
      await ask(page, "Does renewal work?");
      await waitForState(page, ["done"]);
      expect(statuses).toEqual([
        "GET /api/v1/usage 401",
        "POST /api/v1/anon_session 200",
        "GET /api/v1/usage 200",
        "POST /api/v1/stream 401",
        "POST /api/v1/anon_session 200",
        "POST /api/v1/stream 200",
      ]);
      const text = (await lastTurn(page).locator(".answer-text").textContent()) ?? "";
      expect(text).toBe(demoAnswer("Does renewal work?").join(""));
      const stored = JSON.parse(
        (await page.evaluate((k) => localStorage.getItem(k), ANON_KEY)) ?? "null",
      );
      expect(stored.token).not.toBe(garbage.token);
      expect(two.problems).toEqual([]);
    } finally {
      await two.close();
    }
  });

  it("e3. a Supabase session is used instead of an anonymous one: from localStorage or setSession()", async () => {
    const stored = await supabaseToken();
    const { page, problems, close } = await openMagic({
      storage: {
        "sb-localref-auth-token": JSON.stringify({
          access_token: stored,
          expires_at: nowS() + 3600,
          refresh_token: "unused",
        }),
      },
    });
    try {
      const calls: { path: string; authorization: string | null }[] = [];
      page.on("request", async (r) => {
        calls.push({
          path: new URL(r.url()).pathname,
          authorization: await r.headerValue("authorization"),
        });
      });
      expect(await page.locator("#quota").textContent()).toContain("Signed in");
      expect(await page.evaluate((k) => localStorage.getItem(k), ANON_KEY)).toBeNull();

      const given = await supabaseToken();
      await page.evaluate(
        (t) =>
          (
            window as unknown as { magicBox: { setSession(t: string): Promise<void> } }
          ).magicBox.setSession(t),
        given,
      );
      await ask(page, "Am I signed in?");
      await waitForState(page, ["done"]);
      const stream = calls.find((c) => c.path === "/api/v1/stream");
      expect(stream?.authorization).toBe(`Bearer ${given}`);
      expect(calls.some((c) => c.path === "/api/v1/anon_session")).toBe(false);
      expect(await page.locator("#quota").textContent()).toContain("Signed in");
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("d. on a phone-sized screen it works without horizontal scrolling, and no page ever put a token in a URL", async () => {
    const { page, problems, close } = await openMagic({
      context: { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true },
    });
    try {
      await ask(page, "Hello from a phone");
      await waitForState(page, ["done"]);
      expect(
        await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth),
      ).toBe(true);
      await screenshot(page, "d-phone.png");
      expect(problems).toEqual([]);
    } finally {
      await close();
    }

    const requests = await Promise.all(seen);
    const tokens = new Set(
      requests.flatMap((r) => (r.authorization ? [r.authorization.replace(/^Bearer /, "")] : [])),
    );
    // Every test above ran a page; their API calls carried tokens, in headers only.
    expect(tokens.size).toBeGreaterThanOrEqual(5);
    expect(requests.filter((r) => r.url.includes("/api/v1/stream")).length).toBeGreaterThan(5);
    for (const { url } of requests) {
      for (const token of tokens) expect(url).not.toContain(token);
      for (const part of [...tokens].flatMap((t) => t.split("."))) {
        if (part.length >= 16) expect(url).not.toContain(part);
      }
      expect(url).not.toMatch(/token|bearer|eyJ|authorization/i);
    }
  }, 60_000);
});
