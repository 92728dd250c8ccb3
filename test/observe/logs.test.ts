/** @module Structured logs: one JSON line per request with its id, and never a token or message text. */
import { afterEach, describe, expect, it, vi } from "vitest";
import { call } from "../helpers/app";
import { pinClock, randomIp, storeEnv } from "../helpers/stores";
import { anonToken, bearer } from "../helpers/tokens";

function captureLogs(): { lines: () => Record<string, unknown>[]; raw: () => string } {
  const seen: string[] = [];
  for (const level of ["log", "warn", "error"] as const) {
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      seen.push(args.map(String).join(" "));
    });
  }
  return {
    raw: () => seen.join("\n"),
    lines: () => seen.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

afterEach(() => {
  vi.restoreAllMocks();
  // pinClock stops the clock for a test; the next starts with the real one.
  vi.useRealTimers();
});

describe("logs", () => {
  it("write one request line at the end of a stream with its figures, and no token or message text", async () => {
    const logs = captureLogs();
    const token = await anonToken();
    const secretText = `confidential-${crypto.randomUUID()}`;
    const message = encodeURIComponent(`${secretText} [[fake tokens=3]]`);
    const called = await call(`/api/v1/stream?message=${message}`, {
      headers: { ...bearer(token), "X-Request-Id": "req-logs-test-0001" },
      ip: randomIp(),
    });
    await called.res.text();
    await called.settled();

    const raw = logs.raw();
    expect(raw).not.toContain(secretText);
    expect(raw).not.toContain(token);
    expect(raw).not.toContain(token.split(".")[1]);
    const lines = logs.lines();
    const requests = lines.filter((l) => l.event === "request");
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({
      request_id: "req-logs-test-0001",
      route: "/api/v1/stream",
      status: 200,
      principal: "anonymous",
      finish_reason: "stop",
      output_tokens: 3,
    });
    for (const key of [
      "store_ms",
      "upstream_ttfb_ms",
      "stream_duration_ms",
      "cost_micro_usd",
      "ttft_ms",
    ]) {
      expect(typeof requests[0]?.[key]).toBe("number");
    }
    for (const line of lines) expect(line.request_id).toBe("req-logs-test-0001");
  });

  it("name the error code of a refused request, without the bad token", async () => {
    const logs = captureLogs();
    const bad = `${(await anonToken()).slice(0, -4)}AAAA`;
    const called = await call("/api/v1/usage", { headers: bearer(bad) });
    expect(called.res.status).toBe(401);
    await called.settled();
    expect(logs.raw()).not.toContain(bad.split(".")[1]);
    const line = logs.lines().find((l) => l.event === "request");
    expect(line).toMatchObject({ status: 401, error_code: "unauthorized", principal: "none" });
    expect(line?.request_id).toBe(called.res.headers.get("X-Request-Id"));
  });
});

describe("a spent shared budget", () => {
  it("is said once per isolate and window as a warning, and logged on each refused request's access line, never as an error", async () => {
    // Once per hourly window: no turn of the hour between the two refusals.
    pinClock(3_600_000, 60_000);
    const logs = captureLogs();
    // 1 µUSD an hour for all anonymous callers: not enough for one token of any stream.
    const env = storeEnv("durable_object", {
      STORE_PREFIX: `logs${crypto.randomUUID().slice(0, 8)}`,
      BUDGET_ANON_HOURLY_USD: "0.000001",
    });
    for (let i = 0; i < 2; i++) {
      const called = await call(
        "/api/v1/stream?message=hi",
        { headers: bearer(await anonToken()), ip: randomIp() },
        env,
      );
      expect(called.res.status).toBe(503);
      expect(((await called.res.json()) as { error_code: string }).error_code).toBe(
        "budget_exhausted",
      );
      await called.settled();
    }
    const lines = logs.lines();
    expect(lines.filter((l) => l.level === "error")).toEqual([]);
    expect(lines.filter((l) => l.level === "warn")).toMatchObject([
      { event: "budget_exhausted", budget: "anon_hourly" },
    ]);
    expect(lines.filter((l) => l.event === "request")).toMatchObject([
      { level: "info", status: 503, error_code: "budget_exhausted" },
      { level: "info", status: 503, error_code: "budget_exhausted" },
    ]);
  });
});
