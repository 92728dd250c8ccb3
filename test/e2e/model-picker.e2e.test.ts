/**
 * @module Browser test of the Magic Box's model picker with a configured registry (PROVIDERS and
 * MODELS, not the built-in five): it lists exactly the ids GET /api/v1/models gives this caller,
 * in their order, and keeps its choice one of them when the list changes.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { SignJWT } from "jose";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ask, openPage, waitForState, withChromium } from "./browser";
import { type ChatUpstream, startChatUpstream } from "./chat-upstream";
import { type DevServer, startWranglerDev } from "./dev-server";

const SUPABASE_JWT_SECRET = randomBytes(32).toString("base64url");
const MODEL_KEY = "magicBox.model";

/** Two providers on the loopback upstream; three models, two of them for anonymous callers. */
function registryVars(upstreamUrl: string): Record<string, string> {
  return {
    PROVIDERS: JSON.stringify({
      fast: { type: "openai", base_url: upstreamUrl, api_keys: ["PICKER_KEY"] },
      smart: { type: "openai", base_url: upstreamUrl, api_keys: ["PICKER_KEY"] },
    }),
    MODELS: JSON.stringify({
      "team-fast": {
        route: [{ provider: "fast", model: "fast-model-v2" }],
        input_usd_per_million: 0.1,
        output_usd_per_million: 0.4,
      },
      "team-smart": {
        route: [
          { provider: "smart", model: "smart-model-v1" },
          { provider: "fast", model: "fast-model-v2" },
        ],
        input_usd_per_million: 2,
        output_usd_per_million: 8,
      },
      "team-private": {
        route: [{ provider: "smart", model: "private-model" }],
        input_usd_per_million: 1,
        output_usd_per_million: 3,
      },
    }),
    DEFAULT_MODEL: "team-smart",
    ANON_MODELS: "team-fast,team-smart",
    PICKER_KEY: "sk-picker-e2e-not-a-real-key",
  };
}

let upstream: ChatUpstream | undefined;
let server: DevServer | undefined;
let browser: Browser | undefined;

beforeAll(async () => {
  upstream = await startChatUpstream();
  [server, browser] = await withChromium(
    startWranglerDev({
      SECRET_KEY: randomBytes(32).toString("base64url"),
      SUPABASE_JWT_SECRET,
      ...registryVars(upstream.baseUrl),
    }),
  );
}, 90_000);

afterAll(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
  await upstream?.close();
});

function ready() {
  if (!browser || !server || !upstream) throw new Error("setup did not finish");
  return { browser, server, upstream };
}

const open = (storage?: Record<string, string>) =>
  openPage(ready().browser, `${ready().server.url}/magic/`, storage ? { storage } : {});

/** The picker's option values, in order. */
const options = (page: Page) =>
  page.locator("#model option").evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value));

/** GET /api/v1/models as the page reads it. */
async function registry(): Promise<{
  default: string;
  models: { id: string; anonymous: boolean }[];
}> {
  return (await fetch(`${ready().server.url}/api/v1/models`)).json() as never;
}

async function signIn(page: Page): Promise<void> {
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
}

const signOut = (page: Page) =>
  page.evaluate(() =>
    (window as unknown as { magicBox: { clearSession(): Promise<void> } }).magicBox.clearSession(),
  );

describe("the model picker with PROVIDERS and MODELS configured", () => {
  it("lists exactly the configured ids /api/v1/models gives the caller, in order, with the default chosen", async () => {
    const r = await registry();
    expect(r.models.map((m) => m.id)).toEqual(["team-fast", "team-smart", "team-private"]);
    expect(r.default).toBe("team-smart");
    const { page, problems, close } = await open();
    try {
      // Anonymous: ANON_MODELS only; none of the built-in five.
      await expect.poll(() => options(page)).toEqual(["team-fast", "team-smart"]);
      expect(await page.locator("#model").inputValue()).toBe("team-smart");
      expect(await page.locator("#model").isDisabled()).toBe(false);
      await signIn(page);
      await expect.poll(() => options(page)).toEqual(["team-fast", "team-smart", "team-private"]);
      expect(await page.locator("#model").inputValue()).toBe("team-smart");
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("replaces a stored choice the registry no longer has with the default, and streams the chosen id", async () => {
    // An id of the built-in registry, chosen on an earlier visit.
    const { page, problems, close } = await open({ [MODEL_KEY]: "gpt-4o-mini" });
    try {
      await expect.poll(() => options(page)).toEqual(["team-fast", "team-smart"]);
      expect(await page.locator("#model").inputValue()).toBe("team-smart");
      await page.locator("#model").selectOption("team-fast");
      const sent = page.waitForRequest(
        (q) => q.method() === "POST" && new URL(q.url()).pathname === "/api/v1/stream",
      );
      await ask(page, "Which model are you?");
      expect(((await sent).postDataJSON() as { model?: string }).model).toBe("team-fast");
      await waitForState(page, ["done"]);
      // The gateway asked the route's target by its own model name.
      expect(ready().upstream.requests.at(-1)?.model).toBe("fast-model-v2");
      // The choice is kept across a reload while the registry still has it.
      await page.reload();
      await expect.poll(() => options(page)).toEqual(["team-fast", "team-smart"]);
      expect(await page.locator("#model").inputValue()).toBe("team-fast");
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("drops a choice the caller may no longer use when the list shrinks (signing out)", async () => {
    const { page, problems, close } = await open();
    try {
      await signIn(page);
      await expect.poll(() => options(page)).toContain("team-private");
      await page.locator("#model").selectOption("team-private");
      await signOut(page);
      await expect.poll(() => options(page)).toEqual(["team-fast", "team-smart"]);
      expect(await page.locator("#model").inputValue()).toBe("team-smart");
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });
});
