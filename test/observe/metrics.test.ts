/** @module Operator metrics: exact counters for a mix of requests, auth on the endpoint, both formats. */
import { describe, expect, it, vi } from "vitest";
import type { Bindings } from "../../src/env";
import { type Called, call } from "../helpers/app";
import { randomIp, type StoreKind, storeEnv, upstashScope } from "../helpers/stores";
import { anonToken, bearer, supabaseClaims, supabaseHs256 } from "../helpers/tokens";

const METRICS_TOKEN = "metrics-token-for-tests-0123456789";

interface Window {
  requests: number;
  by_status: Record<string, number>;
  by_error_code: Record<string, number>;
  streams: { started: number; finished: number; by_finish_reason: Record<string, number> };
  tokens: { input: number; output: number };
  cost_usd: number;
  store_latency_ms: { count: number; p50_ms: number | null };
  upstream_ttfb_ms: { count: number; p50_ms: number | null };
}

async function metrics(env: Bindings): Promise<Record<"minute" | "hour" | "day", Window>> {
  const { res } = await call("/api/v1/metrics", { headers: bearer(METRICS_TOKEN) }, env);
  expect(res.status).toBe(200);
  return ((await res.json()) as { windows: Record<"minute" | "hour" | "day", Window> }).windows;
}

async function send(env: Bindings, path: string, init: RequestInit = {}) {
  const called = await call(path, { ...init, ip: randomIp() }, env);
  await called.res.text();
  await called.settled();
  return called.res.status;
}

describe.each<StoreKind>(["durable_object", "upstash"])("metrics in the %s store", (kind) => {
  const envFor = (overrides: Record<string, string> = {}) =>
    storeEnv(kind, {
      METRICS_TOKEN,
      STORE_PREFIX: `t${crypto.randomUUID().slice(0, 8)}`,
      RATE_LIMIT_USER: "1/30s",
      ...overrides,
    });

  it("counts a mix of good, unauthorised, invalid and limited requests exactly", async () => {
    const env = envFor();
    const msg = (d: string) => `/api/v1/stream?message=${encodeURIComponent(`hi [[fake ${d}]]`)}`;
    const user = await supabaseHs256(supabaseClaims());
    expect(await send(env, msg("tokens=3"), { headers: bearer(await anonToken()) })).toBe(200);
    expect(await send(env, msg("tokens=2 usage=0"), { headers: bearer(user) })).toBe(200);
    expect(await send(env, msg("tokens=2"), { headers: bearer(user) })).toBe(429);
    expect(await send(env, msg("tokens=2"))).toBe(401);
    expect(await send(env, msg("tokens=2"), { headers: bearer("garbage") })).toBe(401);
    expect(
      await send(env, "/api/v1/stream?message=%20", { headers: bearer(await anonToken()) }),
    ).toBe(422);
    expect(await send(env, msg("status=500"), { headers: bearer(await anonToken()) })).toBe(502);

    const w = await metrics(env);
    for (const window of [w.minute, w.hour, w.day]) {
      expect(window.requests).toBe(7);
      expect(window.by_status).toEqual({ "200": 2, "401": 2, "422": 1, "429": 1, "502": 1 });
      expect(window.by_error_code).toEqual({
        unauthorized: 2,
        invalid_input: 1,
        rate_limited: 1,
        upstream_error: 1,
      });
      expect(window.streams.started).toBe(2);
      expect(window.streams.finished).toBe(2);
      expect(window.streams.by_finish_reason).toEqual({ stop: 2 });
      // 3 from the upstream's usage; the stream without usage at the bytes of "tok tok".
      expect(window.tokens.output).toBe(3 + 7);
      expect(window.cost_usd).toBeGreaterThan(0);
      // Three requests reached the store (two streams and the 429), plus the 502 after limits.
      expect(window.store_latency_ms.count).toBe(4);
      expect(window.upstream_ttfb_ms.count).toBe(2);
    }
  });

  it("answers Prometheus text when asked for text/plain", async () => {
    const env = envFor();
    await send(env, "/api/v1/usage");
    const { res } = await call(
      "/api/v1/metrics",
      { headers: { ...bearer(METRICS_TOKEN), Accept: "text/plain" } },
      env,
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toContain('magicbox_requests{window="minute",status="401"} 1');
    expect(text).toContain('magicbox_errors{window="day",error_code="unauthorized"} 1');
    expect(text).toMatch(/# TYPE magicbox_store_latency_seconds histogram/);
  });
});

describe("metric writes", () => {
  it("are batched per isolate: a burst of requests costs the store one write, and nothing is lost", async () => {
    const scope = upstashScope();
    const env = storeEnv(
      "upstash",
      {
        METRICS_TOKEN,
        STORE_PREFIX: `t${crypto.randomUUID().slice(0, 8)}`,
        METRICS_FLUSH_MS: "300",
      },
      scope,
    );
    // The metrics script is in Redis's cache first (a write through another scope), so the one
    // write is one EVALSHA, whichever test ran before.
    expect(await send(storeEnv("upstash", { METRICS_FLUSH_MS: "0" }), "/api/v1/usage")).toBe(401);
    // The flush timer is driven by the test: however slowly the burst arrives, it is all in
    // before the flush, which then writes once (the first request's waitUntil waits for it).
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    let burst: Called[];
    try {
      burst = await Promise.all(
        Array.from({ length: 20 }, () => call("/api/v1/usage", { ip: randomIp() }, env)),
      );
      for (const b of burst) expect(b.res.status).toBe(401);
      // Twenty answers, and not one write yet: the counters wait in the isolate's batch.
      expect(await scope.stats()).toEqual({ requests: 0, commands: 0 });
      expect(vi.getTimerCount()).toBe(1);
      vi.advanceTimersByTime(300);
    } finally {
      vi.useRealTimers();
    }
    await Promise.all(burst.map((b) => b.settled()));
    expect(await scope.stats()).toEqual({ requests: 1, commands: 1 });
    const w = await metrics(env);
    expect(w.minute.by_status).toEqual({ "401": 20 });
  });
});

describe("the metrics endpoint", () => {
  it("does not exist without METRICS_TOKEN", async () => {
    const { res } = await call("/api/v1/metrics", { headers: bearer("anything") });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error_code: "not_found" });
  });

  it("refuses a wrong or missing token", async () => {
    const env = storeEnv("durable_object", { METRICS_TOKEN });
    for (const headers of [
      {},
      bearer("wrong"),
      bearer(`${METRICS_TOKEN}x`),
      { Authorization: METRICS_TOKEN },
    ]) {
      const { res } = await call("/api/v1/metrics", { headers }, env);
      expect(res.status).toBe(401);
      expect(res.headers.get("WWW-Authenticate")).toMatch(/^Bearer/);
      expect(await res.json()).toMatchObject({ error_code: "unauthorized" });
    }
  });
});
