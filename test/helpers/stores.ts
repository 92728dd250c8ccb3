/** @module The two limit stores as test envs: the Durable Object, and Upstash through the local server. */
import { inject, vi } from "vitest";
import type { Bindings } from "../../src/env";
import type { AdmissionRequest } from "../../src/limits/store";
import { testEnv } from "./app";

export type StoreKind = "durable_object" | "upstash";

/** A scope of the local Upstash server: its own request counter and fault switch. */
export interface UpstashScope {
  id: string;
  stats(): Promise<{ requests: number; commands: number }>;
  reset(): Promise<void>;
  fault(mode: "none" | "error500" | "hang" | "close" | "late"): Promise<void>;
}

/** Opens a fresh scope on the local Upstash server. */
export function upstashScope(): UpstashScope {
  const base = inject("upstashUrl");
  const id = crypto.randomUUID();
  const post = (path: string, body: unknown) =>
    fetch(`${base}${path}`, {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "content-type": "application/json" },
    });
  return {
    id,
    stats: async () => (await fetch(`${base}/__test/stats?scope=${id}`)).json(),
    reset: async () => {
      await post(`/__test/reset?scope=${id}`, {});
    },
    fault: async (mode) => {
      const res = await post("/__test/fault", { mode, scope: id });
      if (!res.ok) throw new Error(`fault ${mode}: ${res.status}`);
    },
  };
}

/** An env using `kind`, with overrides; for Upstash, requests go through `scope`. */
export function storeEnv(
  kind: StoreKind,
  overrides: Partial<Record<keyof Bindings, string | undefined>> = {},
  scope: UpstashScope = upstashScope(),
): Bindings {
  if (kind === "durable_object") return testEnv(overrides);
  return testEnv({
    UPSTASH_REDIS_REST_URL: `${inject("upstashUrl")}/__scope/${scope.id}`,
    UPSTASH_REDIS_REST_TOKEN: inject("upstashToken"),
    ...overrides,
  });
}

/** A random address in 203.0.113.0/24 or 2001:db8::/32, so tests do not share IP windows. */
export function randomIp(v6 = false): string {
  const r = () => Math.floor(Math.random() * 65_536).toString(16);
  return v6
    ? `2001:db8:${r()}:${r()}::${r()}`
    : `203.0.${Math.floor(Math.random() * 256)}.${Math.floor(Math.random() * 254) + 1}`;
}

/**
 * Stops the clock (Date, for the tests, the worker and the Durable Objects alike: they share
 * this isolate) at a moment with at least `marginMs` left in the current bucket of a
 * `windowMs` window, so a test never waits for a boundary nor meets one by chance. The
 * clock stands still until `vi.useRealTimers()` (an `afterEach` of the test's file); timers
 * stay real. Returns the moment. For tests that go through the whole Worker: a test that
 * calls a store or a verifier itself passes it a clock instead (`buildStore`'s `now`,
 * `supabaseVerifier`'s `deps.now`).
 */
export function pinClock(windowMs: number, marginMs: number, from = Date.now()): number {
  const start = Math.floor(from / windowMs) * windowMs;
  const at = from + marginMs <= start + windowMs ? from : start + windowMs + 1;
  vi.useFakeTimers({ toFake: ["Date"], now: at });
  return at;
}

/** An admission request at the store: a fresh id and, unless given, a fresh /64 (no /48), now. */
export function admissionRequest(
  r: Pick<AdmissionRequest, "userKey" | "anonymous" | "price"> &
    Partial<Pick<AdmissionRequest, "ipKey" | "at">>,
): AdmissionRequest {
  return {
    id: crypto.randomUUID(),
    ipKey: `ip:${randomIp()}`,
    wideIpKey: null,
    at: Date.now(),
    ...r,
  };
}
