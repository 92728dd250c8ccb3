/** @module What a caller has spent, and what the fake upstream saw: for "spends nothing" assertions. */
import { env } from "cloudflare:workers";
import { expect, inject } from "vitest";
import { parseConfig } from "../../src/config";
import type { Bindings } from "../../src/env";
import type { LedgerRecord } from "../../src/ledger/record";
import type { LimitsStore } from "../../src/limits/durable-object";
import type { UpstreamRecord } from "../support/upstream-record";
import { call, testEnv } from "./app";
import { anonToken, bearer } from "./tokens";

const UPSTREAM_BASE = inject("upstreamUrl").replace(/\/v1$/, "");

/** What the fake saw for directive `id`, or null when the request never reached it. */
export async function upstreamRecord(id: string): Promise<UpstreamRecord | null> {
  const res = await fetch(`${UPSTREAM_BASE}/__test/requests/${id}`);
  if (res.status === 404) {
    await res.body?.cancel();
    return null;
  }
  expect(res.status).toBe(200);
  return (await res.json()) as UpstreamRecord;
}

/** A message carrying a fresh fake directive, and the directive's id. */
export function fakeMessage(
  options: Record<string, string | number> = {},
  prefix = "Tell me something.",
): { id: string; message: string } {
  const id = crypto.randomUUID();
  const pairs = Object.entries(options).map(([k, v]) => `${k}=${v}`);
  return { id, message: `${prefix} [[fake id=${id} ${pairs.join(" ")}]]` };
}

/** GET /api/v1/stream of a message carrying fake directive `id` (three tokens unless told). */
export function streamPath(id: string, directive = "tokens=3"): string {
  return `/api/v1/stream?message=${encodeURIComponent(`hi [[fake id=${id} ${directive}]]`)}`;
}

const byte = () => Math.floor(Math.random() * 254) + 1;
/** A fresh client address per caller, clear of other tests' per-IP windows. */
export const freshIp = () => `10.${byte()}.${byte()}.${byte()}`;

/** A caller: its token, its client address, and whether its token is anonymous, when known. */
export type Who = { token: string; ip: string; anonymous?: boolean };

/** A new anonymous caller: its own token and a fresh address. */
export async function anonCaller(): Promise<Who> {
  return { token: await anonToken(), ip: freshIp(), anonymous: true };
}

/** POSTs `body` to `path` as `who`: a string is sent as it is, anything else as JSON. */
export function postAs(
  who: Who,
  path: string,
  body: unknown,
  bindings: Bindings = testEnv(),
  headers: Record<string, string> = {},
) {
  return call(
    path,
    {
      method: "POST",
      headers: { ...bearer(who.token), "Content-Type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
      ip: who.ip,
    },
    bindings,
  );
}

interface Window {
  limit: number;
  remaining: number;
  window_seconds: number;
  reset: number;
}
/** The body of GET /api/v1/usage (src/routes/usage.ts). */
export interface Usage {
  user_id: string;
  anonymous: boolean;
  limits: { user: Window; ip: Window };
  quota: { hourly: Window; total: { limit: number; remaining: number } } | null;
  spend: { total_usd: number; today_usd: number; streams: number };
  budget: {
    name: string;
    window: string;
    limit_usd: number;
    spent_usd: number;
    held_usd: number;
    left_usd: number;
    reset: number;
  } | null;
  recent: Record<string, unknown>[] | null;
}

/**
 * What /api/v1/usage says of this caller, asked from the caller's address (one usage read; the
 * request's waitUntil work is settled before it returns).
 */
export async function usageOf(
  who: { token: string; ip: string },
  bindings: Bindings = testEnv(),
): Promise<Usage> {
  const { res, settled } = await call(
    "/api/v1/usage",
    { headers: bearer(who.token), ip: who.ip },
    bindings,
  );
  await settled();
  expect(res.status).toBe(200);
  return (await res.json()) as Usage;
}

/** What /api/v1/usage says of the holder of `token`, asked from a fresh address. */
export function usageOfToken(token: string, bindings: Bindings = testEnv()): Promise<Usage> {
  return usageOf({ token, ip: freshIp() }, bindings);
}

/**
 * No rate-limit hit, no quota unit, no ledger record: the caller is as new. An anonymous caller
 * has a quota (and it is whole); a signed-in one has none; a caller made by `anonCaller` must be
 * seen as anonymous.
 */
export async function expectNothingSpent(who: Who, bindings: Bindings = testEnv()): Promise<void> {
  const u = await usageOf(who, bindings);
  if (who.anonymous !== undefined) expect(u.anonymous).toBe(who.anonymous);
  expect(u.limits.user.remaining).toBe(u.limits.user.limit);
  expect(u.limits.ip.remaining).toBe(u.limits.ip.limit);
  if (u.anonymous) {
    expect(u.quota).not.toBeNull();
    expect(u.quota?.hourly.remaining).toBe(u.quota?.hourly.limit);
    expect(u.quota?.total.remaining).toBe(u.quota?.total.limit);
  } else {
    expect(u.quota).toBeNull();
  }
  expect(u.spend.streams).toBe(0);
}

/** The ledger records of a principal key, read from its Durable Object (as durableStore names it). */
export async function ledgerOf(key: string): Promise<LedgerRecord[]> {
  const ns = env.LIMITS as unknown as DurableObjectNamespace<LimitsStore>;
  const prefix = parseConfig(testEnv()).storePrefix;
  return (await ns.get(ns.idFromName(`${prefix}:user:${key}`)).records()) as LedgerRecord[];
}
