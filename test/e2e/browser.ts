/** @module Chromium for the browser tests: launch it, open the page in a fresh profile, collect its problems. */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  type Browser,
  type BrowserContext,
  type BrowserContextOptions,
  chromium,
  type Page,
} from "playwright-core";
import { ROOT } from "./dev-server";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
/** Where screenshots go (gitignored). */
export const ARTIFACTS = join(ROOT, "test/artifacts");

/** Launches Debian's Chromium, or fails with how to install it. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM}. Install it with: apt-get update && apt-get install -y chromium`,
    );
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/**
 * Waits for `server` (already starting) and Chromium, launched meanwhile. If either fails, stops
 * the other and throws why (the server's failure first).
 */
export async function withChromium<S extends { stop(): Promise<void> }>(
  server: Promise<S>,
): Promise<[S, Browser]> {
  const [started, launched] = await Promise.allSettled([server, launchChromium()]);
  if (started.status === "rejected" || launched.status === "rejected") {
    if (started.status === "fulfilled") await started.value.stop();
    if (launched.status === "fulfilled") await launched.value.close().catch(() => {});
  }
  if (started.status === "rejected") throw started.reason;
  if (launched.status === "rejected") throw launched.reason;
  return [started.value, launched.value];
}

/**
 * What went wrong on `page` from now on: uncaught page errors and console errors. Chromium logs
 * each failed load (an HTTP error status, a network failure) and each CSP violation as a console
 * error, so those count too, except a load that failed with one of `statuses`: the ones the test
 * provokes. Every browser test collects its page's problems here, and expects none.
 */
export function collectProblems(page: Page, statuses: readonly number[] = []): string[] {
  const problems: string[] = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const status = /^Failed to load resource: the server responded with a status of (\d+)/.exec(
      m.text(),
    );
    if (status && statuses.includes(Number(status[1]))) return;
    problems.push(`console: ${m.text()}`);
  });
  return problems;
}

/** A page in its own profile, and what went wrong on it. */
export interface Opened {
  page: Page;
  /** What `collectProblems` collected since before the first navigation; each test expects none. */
  problems: string[];
  close(): Promise<void>;
}

/**
 * Opens `url` in a fresh profile (empty storage, unless `storage` seeds it before the page's
 * script runs) and, unless told not to, waits until the page has asked who the caller is.
 */
export async function openPage(
  browser: Browser,
  url: string,
  options: {
    storage?: Record<string, string>;
    context?: BrowserContextOptions;
    /** HTTP statuses the test provokes: Chromium logs each failed load as a console error. */
    statuses?: number[];
    /** Runs on the new context before its page exists: routes, init scripts. */
    prepareContext?: (context: BrowserContext) => Promise<void>;
    /** Runs on the page before the first navigation, e.g. to listen to every request. */
    beforeGoto?: (page: Page) => void;
    /** Wait until the quota line has loaded (default); false when the test waits itself. */
    waitUntilLoaded?: boolean;
  } = {},
): Promise<Opened> {
  const context = await browser.newContext({
    viewport: { width: 960, height: 720 },
    ...options.context,
  });
  if (options.storage) {
    // Runs before the page's own script, once per new document (not again on reload).
    await context.addInitScript((entries: Record<string, string>) => {
      try {
        if (sessionStorage.getItem("seeded")) return;
        sessionStorage.setItem("seeded", "1");
        for (const [k, v] of Object.entries(entries)) localStorage.setItem(k, v);
      } catch {
        // about:blank has no storage.
      }
    }, options.storage);
  }
  // The page reports CSP violations itself; a blocked inline handler would show here.
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  await options.prepareContext?.(context);
  const page = await context.newPage();
  const problems = collectProblems(page, options.statuses);
  options.beforeGoto?.(page);
  await page.goto(url);
  if (options.waitUntilLoaded !== false) {
    await page.locator('#quota[data-loaded="true"]').waitFor({ timeout: 10_000 });
  }
  return { page, problems, close: () => context.close() };
}

/** Waits until the newest answer is in one of `states` (sending, streaming, done, stopped, incomplete, failed). */
export async function waitForState(page: Page, states: string[], timeout = 10_000): Promise<void> {
  await page.waitForFunction(
    (wanted) =>
      wanted.includes(
        document.querySelector(".turn:last-of-type")?.getAttribute("data-state") ?? "",
      ),
    states,
    { timeout },
  );
}

/** Types `message` and sends it with Enter. */
export async function ask(page: Page, message: string): Promise<void> {
  await page.locator("#prompt").fill(message);
  await page.locator("#prompt").press("Enter");
}

/** A screenshot of the viewport into test/artifacts/ (the page is a fixed frame; only the conversation scrolls). */
export const screenshot = (page: Page, name: string) =>
  page.screenshot({ path: join(ARTIFACTS, name) });
