/**
 * @module The page with Turnstile on, in Chromium against `wrangler dev`: the page learns the
 * site key, renders the widget (a local stand-in for Cloudflare's script, served by
 * page.route), mints with the widget's token, which the worker checks at a siteverify stand-in
 * on loopback. Every request that would leave the machine is aborted and counted.
 */
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SiteverifyServer, startSiteverifyServer } from "../support/siteverify-server";
import { TURNSTILE_TEST_SECRET, TURNSTILE_TEST_SITE_KEY } from "../support/siteverify-tokens";
import { ask, type Opened, openPage, waitForState, withChromium } from "./browser";
import { type DevServer, startWranglerDev } from "./dev-server";

/**
 * Stands in for https://challenges.cloudflare.com/turnstile/v0/api.js: `render` draws a box
 * that records its options and "solves" at once with a token the siteverify stand-in accepts
 * for this page's hostname and the action the page asked for (or `window.__standInAction`).
 */
const STAND_IN = `(() => {
  const widgets = new Map();
  let n = 0;
  const solve = (id) => {
    const o = widgets.get(id);
    const action = window.__standInAction ?? o.action;
    const token = "v:" + JSON.stringify({ success: true, hostname: location.hostname, action, n: ++n });
    setTimeout(() => o.callback(token), 0);
  };
  window.turnstile = {
    render(el, o) {
      const id = "w" + widgets.size;
      widgets.set(id, o);
      const box = document.createElement("div");
      box.className = "stand-in-widget";
      box.dataset.sitekey = o.sitekey;
      box.dataset.action = o.action;
      el.append(box);
      solve(id);
      return id;
    },
    reset(id) { solve(id); },
    remove(id) { widgets.delete(id); },
  };
})();`;

let server: DevServer | undefined;
let siteverify: SiteverifyServer | undefined;
let browser: Browser | undefined;
let setupError: Error | undefined;
/** Requests to anywhere but this machine: aborted, and each test expects none but the widget's. */
const offMachine: string[] = [];

beforeAll(async () => {
  try {
    siteverify = await startSiteverifyServer();
    [server, browser] = await withChromium(
      startWranglerDev({
        TURNSTILE_SECRET_KEY: TURNSTILE_TEST_SECRET,
        TURNSTILE_SITE_KEY: TURNSTILE_TEST_SITE_KEY,
        TURNSTILE_VERIFY_URL: siteverify.url,
      }),
    );
  } catch (e) {
    setupError = e instanceof Error ? e : new Error(String(e));
  }
}, 60_000);

afterAll(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
  await siteverify?.close();
});

interface WithWidget extends Opened {
  /** "METHOD /path status" of each API response. */
  api: string[];
  /** The JSON bodies the page sent to /api/v1/anon_session. */
  mints: unknown[];
}

/**
 * The page on /magic/ with the stand-in widget; requests off this machine are aborted and counted.
 * `action` makes the widget solve for another action than the page asked for.
 */
async function openWithWidget(
  action?: string,
  options: Parameters<typeof openPage>[2] = {},
): Promise<WithWidget> {
  if (setupError) throw setupError;
  if (!browser || !server) throw new Error("setup did not finish");
  const api: string[] = [];
  const mints: unknown[] = [];
  const opened = await openPage(browser, `${server.url}/magic/`, {
    ...options,
    prepareContext: async (context) => {
      await context.route("**/*", (route) => {
        const url = new URL(route.request().url());
        if (url.hostname === "127.0.0.1") return route.continue();
        if (url.href.startsWith("https://challenges.cloudflare.com/turnstile/v0/api.js")) {
          return route.fulfill({ contentType: "text/javascript", body: STAND_IN });
        }
        offMachine.push(url.href);
        return route.abort();
      });
      if (action)
        await context.addInitScript((a) => Object.assign(window, { __standInAction: a }), action);
    },
    beforeGoto: (page) => {
      page.on("request", (r) => {
        if (new URL(r.url()).pathname === "/api/v1/anon_session") mints.push(r.postDataJSON());
      });
      page.on("response", (r) => {
        const path = new URL(r.url()).pathname;
        if (path.startsWith("/api/")) api.push(`${r.request().method()} ${path} ${r.status()}`);
      });
    },
  });
  return { ...opened, api, mints };
}

describe("the page with Turnstile on", () => {
  it("renders the widget, mints with its token and streams an answer", async () => {
    const before = siteverify?.calls() ?? 0;
    const { page, problems, api, mints, close } = await openWithWidget();
    try {
      const widget = page.locator("#turnstile .stand-in-widget");
      expect(await widget.getAttribute("data-sitekey")).toBe(TURNSTILE_TEST_SITE_KEY);
      expect(await widget.getAttribute("data-action")).toBe("anon_session");
      expect(api).toContain("POST /api/v1/anon_session 200");
      expect(mints).toHaveLength(1);
      expect((mints[0] as { turnstile_token?: string }).turnstile_token).toMatch(/^v:/);
      expect((siteverify?.calls() ?? 0) - before).toBe(1);

      await ask(page, "hello there");
      await waitForState(page, ["done"], 15_000);
      expect(api).toContain("POST /api/v1/stream 200");
      expect(problems).toEqual([]);
      expect(offMachine).toEqual([]);
    } finally {
      await close();
    }
  });

  it("gets no session when the widget's token is for another action", async () => {
    // The mint is refused, so the page never loads its quota: the test waits for the refusal.
    const { page, problems, api, close } = await openWithWidget("login", {
      statuses: [403],
      waitUntilLoaded: false,
    });
    try {
      await page.waitForFunction(() => document.querySelector("#turnstile .stand-in-widget"));
      await expect
        .poll(() => api.filter((a) => a.startsWith("POST /api/v1/anon_session")), {
          timeout: 10_000,
        })
        .toContain("POST /api/v1/anon_session 403");
      expect(api).not.toContain("POST /api/v1/anon_session 200");
      expect(problems).toEqual([]);
      expect(offMachine).toEqual([]);
    } finally {
      await close();
    }
  });
});
