/**
 * @module Browser tests of the Magic Box page: Debian's Chromium driven by playwright-core
 * against a real `wrangler dev` (demo provider, Durable Object limits store, fresh state).
 */
import { randomBytes, randomUUID } from "node:crypto";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { SignJWT } from "jose";
import type { Browser, Page, Response as PlaywrightResponse, Route } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ARTIFACTS, ask, type Opened, openPage, waitForState, withChromium } from "./browser";
import { type DevServer, ROOT, startWranglerDev } from "./dev-server";

const HOURLY_QUOTA = 2;
const ANON_KEY = "magicBox.anonSession";
// Per-run secrets: stable for this wrangler dev (tokens survive an isolate restart), never reused.
const SECRET_KEY = randomBytes(32).toString("base64url");
const SUPABASE_JWT_SECRET = randomBytes(32).toString("base64url");

let server: DevServer | undefined;
let browser: Browser | undefined;
let demoAnswer: (message: string) => string[];
let formatWait: (seconds: number) => string;

/** Every request any page of this file made: the URL and its Authorization header. */
const seen: Promise<{ url: string; authorization: string | null }>[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const nowS = () => Math.floor(Date.now() / 1000);

/**
 * Why setup failed, if it did. Each test rethrows it, so a missing browser makes every test
 * FAIL with the reason (a failing beforeAll would only mark them skipped).
 */
let setupError: Error | undefined;

beforeAll(async () => {
  try {
    await setup();
  } catch (e) {
    setupError = e instanceof Error ? e : new Error(String(e));
  }
}, 60_000);

async function setup(): Promise<void> {
  // Loaded by URL so the type checker of the Node tests does not pull in Worker sources.
  demoAnswer = (await import(pathToFileURL(join(ROOT, "src/stream/providers/demo.ts")).href))
    .demoAnswer;
  formatWait = (await import(pathToFileURL(join(ROOT, "web/magic/explain.ts")).href)).formatWait;

  [server, browser] = await withChromium(
    startWranglerDev({
      SECRET_KEY,
      SUPABASE_JWT_SECRET,
      ANON_QUOTA_HOURLY: String(HOURLY_QUOTA),
      // Every test opens a fresh browser profile, and so mints a token; keep room for all of them.
      ANON_SESSIONS_PER_IP_HOURLY: "40",
    }),
  );

  const page = await fetch(`${server.url}/magic/`);
  if (page.status !== 200) {
    throw new Error(
      `GET /magic/ answered ${page.status}, not 200: ${(await page.text()).slice(0, 300)}`,
    );
  }
}

afterAll(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
});

/** A fresh browser profile (empty localStorage) on /magic/, reached through the `/` redirect. */
async function openMagic(options: Parameters<typeof openPage>[2] = {}): Promise<Opened> {
  if (setupError) throw setupError;
  if (!browser || !server) throw new Error("setup did not finish");
  const opened = await openPage(browser, `${server.url}/`, {
    ...options,
    beforeGoto: (page) => {
      page.on("request", (r) => {
        seen.push(
          r
            .headerValue("authorization")
            .catch(() => null) // a request torn down by Stop may have no headers left to read
            .then((authorization) => ({ url: r.url(), authorization })),
        );
      });
      options.beforeGoto?.(page);
    },
  });
  expect(new URL(opened.page.url()).pathname).toBe("/magic/");
  return opened;
}

const lastTurn = (page: Page) => page.locator(".turn").last();

async function metric(page: Page, key: string): Promise<string> {
  return (await lastTurn(page).locator(`[data-metric="${key}"]`).textContent()) ?? "";
}

/** Appends "METHOD /path status" for each API response of `page`. */
function recordApiStatuses(page: Page, into: string[]): void {
  page.on("response", (r) => {
    const path = new URL(r.url()).pathname;
    // The model registry is read once at load, without a token: not part of the session's story.
    if (path.startsWith("/api/") && path !== "/api/v1/models")
      into.push(`${r.request().method()} ${path} ${r.status()}`);
  });
}

const screenshot = (page: Page, name: string) =>
  page.screenshot({ path: join(ARTIFACTS, name), fullPage: true });

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
  it("a. streams a prompt sent with Enter token by token, then shows metrics and the demo notice", async () => {
    const { page, problems, close } = await openMagic();
    try {
      expect(await page.locator("#quota").textContent()).toContain(
        `${HOURLY_QUOTA} of ${HOURLY_QUOTA} streams left this hour`,
      );
      // A first visit, nothing answered yet: the server says the demo answers, so the page does.
      await page.locator("#demo-notice").waitFor({ state: "visible" });
      const box = page.locator("#prompt");
      await box.click();
      await box.pressSequentially("What does the gateway do?");
      await box.press("Shift+Enter");
      await box.pressSequentially("Answer in one line.");
      const message = "What does the gateway do?\nAnswer in one line.";
      expect(await box.inputValue()).toBe(message);
      expect(await page.locator(".turn").count()).toBe(0);

      // Record, inside the page, every length the answer text passes through.
      await page.evaluate(() => {
        const w = window as unknown as { lengths: number[] };
        w.lengths = [];
        new MutationObserver(() => {
          const text = document.querySelector(".turn:last-of-type .answer-text")?.textContent;
          if (typeof text === "string") w.lengths.push(text.length);
        }).observe(document.getElementById("conversation") as HTMLElement, {
          subtree: true,
          childList: true,
          characterData: true,
        });
      });
      await box.press("Enter");
      await waitForState(page, ["streaming", "done"]);
      expect(await lastTurn(page).locator(".you-text").textContent()).toBe(message);
      await waitForState(page, ["done"]);

      const full = demoAnswer(message).join("");
      expect(await lastTurn(page).locator(".answer-text").textContent()).toBe(full);
      const lengths = await page.evaluate(
        () => (window as unknown as { lengths: number[] }).lengths,
      );
      const intermediate = new Set(lengths.filter((n) => n > 0 && n < full.length));
      expect(intermediate.size, `lengths seen: ${lengths.join(",")}`).toBeGreaterThanOrEqual(2);

      expect(await metric(page, "tokens")).toMatch(/^\d+ in · \d+ out$/);
      expect(await metric(page, "cost")).toMatch(/^\$0\.\d{6}$/);
      expect(await metric(page, "ttft")).toMatch(/^\d+ ms$|^\d+\.\d s$/);
      expect(await metric(page, "duration")).toMatch(/^\d+ ms$|^\d+\.\d s$/);
      expect(await page.locator("#demo-notice").isVisible()).toBe(true);
      expect(await page.locator("#quota").textContent()).toContain(
        `${HOURLY_QUOTA - 1} of ${HOURLY_QUOTA} streams left this hour`,
      );
      expect(await page.locator("#status").textContent()).toMatch(/^Answer complete/);
      expect(await box.inputValue()).toBe("");
      expect(await page.locator("#send").isEnabled()).toBe(true);
      expect(await page.locator("#stop").isHidden()).toBe(true);
      expect(await page.evaluate(() => document.activeElement?.id)).toBe("prompt");
      await screenshot(page, "a-finished-answer.png");
      // Once the demo has answered in this browser, its banner is there from the start.
      await page.reload();
      await page.locator('#quota[data-loaded="true"]').waitFor();
      expect(await page.locator("#demo-notice").isVisible()).toBe(true);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("b. Stop keeps the partial answer, marks it stopped, and stops the stream on the server (finish_reason stopped)", async () => {
    const { page, problems, close } = await openMagic();
    try {
      const headerIds: string[] = [];
      page.on("response", (r) => {
        const id = r.headers()["x-stream-id"];
        if (new URL(r.url()).pathname === "/api/v1/stream" && id) headerIds.push(id);
      });
      const message = "Tell me how stopping a stream works";
      await ask(page, message);
      await page.waitForFunction(
        () =>
          (document.querySelector(".turn:last-of-type .answer-text")?.textContent?.length ?? 0) >=
          20,
        undefined,
        { timeout: 10_000 },
      );
      expect(await page.locator("#send").isDisabled()).toBe(true);
      await page.locator("#stop").click();
      await waitForState(page, ["stopped"], 5_000);

      const full = demoAnswer(message).join("");
      const partial = (await lastTurn(page).locator(".answer-text").textContent()) ?? "";
      expect(partial.length).toBeGreaterThan(0);
      expect(partial.length).toBeLessThan(full.length);
      expect(full.startsWith(partial)).toBe(true);
      await sleep(300);
      expect(await lastTurn(page).locator(".answer-text").textContent()).toBe(partial);
      expect(await lastTurn(page).locator(".badge").textContent()).toBe("Stopped");
      expect(await lastTurn(page).locator(".note").textContent()).toMatch(/stopped/i);
      expect(await page.locator("#send").isEnabled()).toBe(true);
      expect(await page.locator("#stop").isHidden()).toBe(true);

      const streamId = await lastTurn(page).getAttribute("data-stream-id");
      expect(streamId).toBeTruthy();
      expect(headerIds).toContain(streamId);
      // Stop reached the server (DELETE /api/v1/streams/{id}), not only the page's own read: the
      // worker's stream_end line names stopped, not the client_abort of a reader that left.
      await expect
        .poll(
          () =>
            server?.logLines().find((l) => l.event === "stream_end" && l.stream_id === streamId),
          { timeout: 5_000, interval: 100 },
        )
        .toBeTruthy();
      const line = server
        ?.logLines()
        .find((l) => l.event === "stream_end" && l.stream_id === streamId);
      expect(line?.finish_reason).toBe("stopped");
      expect(line?.provider).toBe("demo");
      await screenshot(page, "b-stopped.png");
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

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

  it("e2. an error event mid-stream, a dropped connection, 422, 502 and 503 each get a plain sentence; partial text is kept and marked", async () => {
    const { page, problems, close } = await openMagic({ statuses: [422, 502, 503] });
    try {
      // Canned answers of /api/v1/stream, served in order by the browser itself.
      const sse = { "Content-Type": "text/event-stream; charset=utf-8" };
      const json = { "Content-Type": "application/json; charset=utf-8" };
      const canned: Parameters<Route["fulfill"]>[0][] = [
        {
          status: 200,
          headers: { ...sse, "X-Stream-Id": "canned-error" },
          // CRLF, CR and LF line ends, a comment and a data field split over two lines.
          body:
            ": comment\r\n\r\n" +
            'id: 1\r\nevent: message_chunk\r\ndata: {"content":"Partial answer ","output_tokens":3,\r\ndata: "cost_usd":0.000002}\r\n\r\n' +
            'id: 2\revent: message_chunk\rdata: {"content":"so far","output_tokens":5,"cost_usd":0.000004}\r\r' +
            'id: 3\nevent: error\ndata: {"error_code":"upstream_error","detail":"the model provider failed mid-stream","retry_after":null}\n\n',
        },
        {
          status: 200,
          headers: { ...sse, "X-Stream-Id": "canned-drop" },
          // The stream ends without a terminal event; the unterminated `done` must not count.
          body:
            'event: message_chunk\ndata: {"content":"Half an ans","output_tokens":4,"cost_usd":0.000003}\n\n' +
            'event: done\ndata: {"stream_id":"canned-drop","provider":"demo"}',
        },
        {
          status: 422,
          headers: json,
          body: JSON.stringify({
            error_code: "invalid_input",
            detail: "message: must not be only whitespace",
            retry_after: null,
            fields: ["message"],
          }),
        },
        {
          status: 502,
          headers: sse,
          body: 'id: 1\nevent: error\ndata: {"error_code":"upstream_error","detail":"the model provider failed","retry_after":null}\n\n',
        },
        {
          status: 503,
          headers: { ...json, "Retry-After": "2" },
          body: JSON.stringify({
            error_code: "upstream_busy",
            detail: "the model provider is busy",
            retry_after: 2,
          }),
        },
      ];
      let served = 0;
      await page.route("**/api/v1/stream", (route) => route.fulfill(canned[served++]));

      await ask(page, "First: an error mid-stream");
      await waitForState(page, ["incomplete"]);
      let turn = lastTurn(page);
      expect(await turn.locator(".answer-text").textContent()).toBe("Partial answer so far");
      expect(await turn.locator(".badge").textContent()).toBe("Incomplete");
      expect(await turn.locator(".note").textContent()).toBe(
        "The answer broke off because of an error on the server (the model provider failed mid-stream).",
      );
      expect(await metric(page, "cost")).toBe("$0.000004");

      await ask(page, "Second: a dropped connection");
      await waitForState(page, ["incomplete"]);
      turn = lastTurn(page);
      expect(await turn.locator(".answer-text").textContent()).toBe("Half an ans");
      expect(await turn.locator(".note").textContent()).toBe(
        "The connection dropped before the answer finished.",
      );
      // No answer came from the demo here: the banner shows only if the server says it answers.
      const demo = await page.evaluate(
        async () => ((await (await fetch("/api/v1/models")).json()) as { demo?: boolean }).demo,
      );
      expect(await page.locator("#demo-notice").isHidden()).toBe(demo !== true);

      await ask(page, "Third: a 422");
      await waitForState(page, ["failed"]);
      expect(await lastTurn(page).locator(".note").textContent()).toBe(
        "The message was not accepted. Message: must not be only whitespace.",
      );
      await ask(page, "Fourth: a 502");
      await waitForState(page, ["failed"]);
      expect(await lastTurn(page).locator(".note").textContent()).toBe(
        "The model provider failed to answer. Please try again.",
      );
      await screenshot(page, "e-errors.png");

      await ask(page, "Fifth: a 503 with Retry-After");
      await waitForState(page, ["failed"]);
      expect(await lastTurn(page).locator(".note").textContent()).toBe(
        "The model provider is busy. Please try again shortly.",
      );
      expect(await page.locator("#countdown").textContent()).toMatch(
        /^Send is available again in [12] s\.$/,
      );
      expect(await page.locator("#send").isDisabled()).toBe(true);
      await page.waitForFunction(
        () => !(document.getElementById("send") as HTMLButtonElement).disabled,
        undefined,
        { timeout: 4_000 },
      );
      expect(await page.locator("#notice").isHidden()).toBe(true);
      expect(served).toBe(canned.length);
      expect(problems).toEqual([]);
    } finally {
      await close();
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
