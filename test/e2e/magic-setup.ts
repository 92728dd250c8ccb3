/**
 * @module The setup of the Magic Box page's browser tests: Debian's Chromium driven by
 * playwright-core against a real `wrangler dev` (demo provider, Durable Object limits store,
 * fresh state), started once per test file by `useMagicServer()`.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, expect } from "vitest";
import { ARTIFACTS, type Opened, openPage, withChromium } from "./browser";
import { type DevServer, ROOT, startWranglerDev } from "./dev-server";

export const HOURLY_QUOTA = 2;
export const ANON_KEY = "magicBox.anonSession";
// Per-run secrets: stable for this wrangler dev (tokens survive an isolate restart), never reused.
const SECRET_KEY = randomBytes(32).toString("base64url");
/** The HS256 secret the server accepts Supabase tokens with. */
export const SUPABASE_JWT_SECRET = randomBytes(32).toString("base64url");

// Set by the setup of the calling test file; exported as live bindings, read at test time.
export let server: DevServer | undefined;
let browser: Browser | undefined;
export let demoAnswer: (message: string) => string[];
export let formatWait: (seconds: number) => string;

/** Every request any page of the calling test file made: the URL and its Authorization header. */
export const seen: Promise<{ url: string; authorization: string | null }>[] = [];

/**
 * Why setup failed, if it did. Each test rethrows it, so a missing browser makes every test
 * FAIL with the reason (a failing beforeAll would only mark them skipped).
 */
let setupError: Error | undefined;

/** Starts wrangler dev and Chromium for the calling test file, and stops them after. */
export function useMagicServer(): void {
  beforeAll(async () => {
    try {
      await setup();
    } catch (e) {
      setupError = e instanceof Error ? e : new Error(String(e));
    }
  }, 60_000);

  afterAll(async () => {
    await browser?.close().catch(() => {});
    await server?.stop();
  });
}

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

/** A fresh browser profile (empty localStorage) on /magic/, reached through the `/` redirect. */
export async function openMagic(options: Parameters<typeof openPage>[2] = {}): Promise<Opened> {
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

export const lastTurn = (page: Page) => page.locator(".turn").last();

export const screenshot = (page: Page, name: string) =>
  page.screenshot({ path: join(ARTIFACTS, name), fullPage: true });
