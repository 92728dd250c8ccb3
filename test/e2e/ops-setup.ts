/**
 * @module The setup of the operator page's browser tests: `wrangler dev` with both operator
 * tokens and some traffic in its metrics and ledger (streams, refused tokens, a bad input), and
 * Chromium. The model is a configured route whose first target refuses connections, so every
 * stream is answered by the fallback (a loopback OpenAI-compatible server).
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll } from "vitest";
import { freePort } from "../support/ports";
import { withChromium } from "./browser";
import { type ChatUpstream, startChatUpstream } from "./chat-upstream";
import { type DevServer, startWranglerDev } from "./dev-server";

export const METRICS_TOKEN = "ops-e2e-metrics-token-0123456789abcdef";
export const ADMIN_TOKEN = "ops-e2e-admin-token-0123456789abcdef-01";

/** The configured model the streams use, and the route target that answers them. */
export const ROUTE = { model: "ops-route", provider: "backup", upstreamModel: "backup-model-1" };

/** PROVIDERS and MODELS: `primary` (nothing listens at `deadUrl`) falls back to `backup`. */
function routeVars(deadUrl: string, upstreamUrl: string): Record<string, string> {
  return {
    PROVIDERS: JSON.stringify({
      primary: { type: "openai", base_url: deadUrl, api_keys: ["OPS_KEY"] },
      [ROUTE.provider]: { type: "openai", base_url: upstreamUrl, api_keys: ["OPS_KEY"] },
    }),
    MODELS: JSON.stringify({
      [ROUTE.model]: {
        route: [
          { provider: "primary", model: "primary-model-1" },
          { provider: ROUTE.provider, model: ROUTE.upstreamModel },
        ],
        input_usd_per_million: 1,
        output_usd_per_million: 2,
      },
    }),
    ANON_MODELS: ROUTE.model,
    OPS_KEY: "sk-ops-e2e-not-a-real-key",
  };
}

/** A chart's `data-values`: what it draws. */
export interface BarData {
  categories: string[];
  series: { label: string; values: number[]; color: string }[];
}

/** What a test file gets once setup has run. */
export interface OpsRig {
  dev(): DevServer;
  browser(): Browser;
  /** The streaming caller's ledger id (`anonymous:<id>`). */
  user(): string;
  /** The streams' summed cost in µUSD. */
  costMicroUsd(): number;
}

/** Starts wrangler dev and Chromium, makes `streams` streams and some refusals, and waits for the ledger. */
export function useOpsRig(streams: number): OpsRig {
  let dev: DevServer | undefined;
  let browser: Browser | undefined;
  let upstream: ChatUpstream | undefined;
  let user = "";
  let cost = 0;
  beforeAll(async () => {
    upstream = await startChatUpstream();
    const dead = `http://127.0.0.1:${await freePort()}/v1`;
    [dev, browser] = await withChromium(
      startWranglerDev({
        METRICS_TOKEN,
        ADMIN_TOKEN,
        METRICS_FLUSH_MS: "0",
        ...routeVars(dead, upstream.baseUrl),
      }),
    );
    const minted = await fetch(`${dev.url}/api/v1/anon_session`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    const { token } = (await minted.json()) as { token: string };
    const auth = { Authorization: `Bearer ${token}` };
    for (let i = 0; i < streams; i++) {
      const res = await fetch(
        `${dev.url}/api/v1/stream?message=${encodeURIComponent(`Hello ${i}`)}`,
        { headers: auth },
      );
      const text = await res.text();
      const done = text.split("\n\n").find((f) => f.includes("event: done"));
      const data = JSON.parse(done?.split("data: ")[1] ?? "{}") as { cost_usd: number };
      cost += Math.round(data.cost_usd * 1e6);
    }
    for (let i = 0; i < 2; i++) {
      await fetch(`${dev.url}/api/v1/stream?message=hi`, {
        headers: { Authorization: "Bearer x" },
      });
    }
    await fetch(`${dev.url}/api/v1/stream?message=`, { headers: auth });
    const usage = (await (await fetch(`${dev.url}/api/v1/usage`, { headers: auth })).json()) as {
      user_id: string;
    };
    user = `anonymous:${usage.user_id}`;
    // The records go through the queue: wait (bounded) until all are in D1.
    for (let i = 0; i < 100; i++) {
      const res = await fetch(`${dev.url}/api/v1/admin/ledger?user=${encodeURIComponent(user)}`, {
        headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      if (((await res.json()) as { records: unknown[] }).records.length === streams) break;
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 90_000);

  afterAll(async () => {
    await browser?.close().catch(() => {});
    await dev?.stop();
    await upstream?.close();
  });

  const ready = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error("setup did not finish");
    return v;
  };
  return {
    dev: () => ready(dev),
    browser: () => ready(browser),
    user: () => user,
    costMicroUsd: () => cost,
  };
}

/** Types both tokens and presses Enter, as a keyboard user would; waits for the board. */
export async function signInByKeyboard(page: Page): Promise<void> {
  await page.locator("#metrics-token").focus();
  await page.keyboard.type(METRICS_TOKEN);
  await page.keyboard.press("Tab");
  await page.keyboard.type(ADMIN_TOKEN);
  await page.keyboard.press("Enter");
  await page.waitForSelector("body[data-loaded]");
}

/** The `data-values` of chart `id`. */
export async function chartData(page: Page, id: string): Promise<BarData> {
  return JSON.parse((await page.getAttribute(`#${id}`, "data-values")) ?? "null") as BarData;
}
