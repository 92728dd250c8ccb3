/** @module The Upstash store fails closed (down, 500, hang) and costs few round trips. */
import { describe, expect, inject, it, vi } from "vitest";
import type { Bindings } from "../../src/env";
import { SCRIPTS } from "../../src/limits/upstash-protocol";
import { call } from "../helpers/app";
import { usageOf } from "../helpers/gate";
import { randomIp, storeEnv, upstashScope } from "../helpers/stores";
import { anonToken, bearer, supabaseClaims, supabaseHs256 } from "../helpers/tokens";

const upstreamBase = inject("upstreamUrl").replace(/\/v1$/, "");

/** One command straight to the local Upstash server, outside any scope, as JSON results. */
async function redis(...command: string[]): Promise<unknown> {
  const res = await fetch(inject("upstashUrl"), {
    method: "POST",
    headers: { Authorization: `Bearer ${inject("upstashToken")}` },
    body: JSON.stringify(command),
  });
  return ((await res.json()) as { result: unknown }).result;
}

async function streamOnce(env: Bindings, token: string) {
  const id = crypto.randomUUID();
  const message = encodeURIComponent(`hi [[fake id=${id} tokens=2]]`);
  const called = await call(
    `/api/v1/stream?message=${message}`,
    { headers: bearer(token), ip: randomIp() },
    env,
  );
  return { ...called, id };
}

async function upstreamSaw(id: string): Promise<boolean> {
  return (await fetch(`${upstreamBase}/__test/requests/${id}`)).status === 200;
}

async function expectLimitsUnavailable(res: Response): Promise<void> {
  expect(res.status).toBe(503);
  const body = (await res.json()) as { error_code: string; detail: string; retry_after: number };
  expect(body.error_code).toBe("limits_unavailable");
  expect(Number(res.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
  expect(body.retry_after).toBe(Number(res.headers.get("Retry-After")));
  expect(body.detail).not.toMatch(/127\.0\.0\.1|Upstash|ECONN|fetch/i);
}

describe("the Upstash store fails closed", () => {
  it("answers 503 limits_unavailable without calling the upstream when the server is down", async () => {
    // Port 1 on loopback: nothing listens, the connection is refused.
    const env = storeEnv("upstash", { UPSTASH_REDIS_REST_URL: "http://127.0.0.1:1" });
    const r = await streamOnce(env, await anonToken());
    await expectLimitsUnavailable(r.res);
    expect(await upstreamSaw(r.id)).toBe(false);
  });

  it("tries three times to cancel an admission whose answer was lost, then logs it once", async () => {
    const scope = upstashScope();
    await scope.fault("error500");
    const env = storeEnv("upstash", {}, scope);
    const seen: string[] = [];
    const warn = vi.spyOn(console, "warn").mockImplementation((...args: unknown[]) => {
      seen.push(args.map(String).join(" "));
    });
    try {
      const r = await streamOnce(env, await anonToken());
      await expectLimitsUnavailable(r.res);
      await r.settled();
    } finally {
      warn.mockRestore();
    }
    // The admission, three cancels and the metrics write: five requests (a 500 is an answer, so
    // the client does not retry any of them itself).
    expect((await scope.stats()).requests).toBe(5);
    const cancels = seen.filter((l) => l.includes('"admission_cancel_failed"'));
    expect(cancels).toHaveLength(1);
  });

  it("answers 503 when the store answers HTTP 500", async () => {
    const scope = upstashScope();
    await scope.fault("error500");
    const r = await streamOnce(
      storeEnv("upstash", {}, scope),
      await supabaseHs256(supabaseClaims()),
    );
    await expectLimitsUnavailable(r.res);
    expect(await upstreamSaw(r.id)).toBe(false);
  });

  it("answers 503 when the store hangs longer than LIMITS_TIMEOUT_MS", async () => {
    const scope = upstashScope();
    await scope.fault("hang");
    const env = storeEnv("upstash", { LIMITS_TIMEOUT_MS: "300" }, scope);
    const r = await streamOnce(env, await anonToken());
    await expectLimitsUnavailable(r.res);
    expect(await upstreamSaw(r.id)).toBe(false);
    await scope.fault("none");
  });

  it("spends nothing on a 503 whose admission the store committed but answered too late", async () => {
    const scope = upstashScope();
    const prefix = `late${crypto.randomUUID().slice(0, 8)}`;
    const env = storeEnv("upstash", { LIMITS_TIMEOUT_MS: "300", STORE_PREFIX: prefix }, scope);
    const token = await anonToken();
    const ip = randomIp();
    // On a redis that does not know a script yet, the first try is an EVALSHA that redis answers
    // NOSCRIPT, and the timeout would fall on that answer: the script would never run. The two
    // scripts this refusal runs, its admission and its cancel, are loaded first, as on any
    // running store (a warm-up stream loads only the admission's).
    for (const script of [SCRIPTS.admit, SCRIPTS.cancelAdmission]) {
      expect(await redis("SCRIPT", "LOAD", script)).toMatch(/^[0-9a-f]{40}$/);
    }
    await scope.fault("late");
    const id = crypto.randomUUID();
    const refused = await call(
      `/api/v1/stream?message=${encodeURIComponent(`hi [[fake id=${id} tokens=2]]`)}`,
      { headers: bearer(token), ip },
      env,
    );
    await expectLimitsUnavailable(refused.res);
    expect(await upstreamSaw(id)).toBe(false);
    // The admission ran at once; its cancellation (in waitUntil) ran after it, also answered late.
    await refused.settled();
    await scope.fault("none");
    // The admission did reach the store: its counters exist, counted once and undone. Waited
    // for as a state of the store, not for a time: the store ran each command as it came.
    await vi.waitFor(
      async () => {
        const counters = [
          ...((await redis("KEYS", `${prefix}:rl:user:*`)) as string[]),
          ...((await redis("KEYS", `${prefix}:quota:*`)) as string[]),
        ];
        expect(counters.length).toBe(3);
        for (const key of counters) expect(await redis("GET", key)).toBe("0");
      },
      { timeout: 5_000, interval: 20 },
    );
    const usage = await usageOf({ token, ip }, env);
    expect(usage.limits.user.remaining).toBe(30);
    expect(usage.limits.ip.remaining).toBe(60);
    expect(usage.quota?.hourly.remaining).toBe(20);
    expect(usage.quota?.total.remaining).toBe(100);
  });

  it("answers 503 when the store drops the connection", async () => {
    const scope = upstashScope();
    await scope.fault("close");
    const r = await streamOnce(storeEnv("upstash", {}, scope), await anonToken());
    await expectLimitsUnavailable(r.res);
    expect(await upstreamSaw(r.id)).toBe(false);
  });

  it("refuses to mint anonymous sessions while the store is down", async () => {
    const scope = upstashScope();
    await scope.fault("error500");
    const { res } = await call(
      "/api/v1/anon_session",
      { method: "POST", headers: { "Content-Type": "application/json" } },
      storeEnv("upstash", {}, scope),
    );
    await expectLimitsUnavailable(res);
  });

  it("recovers as soon as the store answers again, without a restart", async () => {
    const scope = upstashScope();
    const env = storeEnv("upstash", {}, scope);
    await scope.fault("error500");
    await expectLimitsUnavailable((await streamOnce(env, await anonToken())).res);
    await scope.fault("none");
    const r = await streamOnce(env, await anonToken());
    expect(r.res.status).toBe(200);
    await r.res.text();
  });
});

describe("round trips to the Upstash store", () => {
  it("costs one request for the rate limits and the quota together, then one for the ledger and one for the metrics", async () => {
    const scope = upstashScope();
    const env = storeEnv("upstash", {}, scope);
    // Warm up: the first call of a fresh Redis may need EVALSHA -> NOSCRIPT -> EVAL.
    const warm = await streamOnce(env, await anonToken());
    await warm.res.text();
    await warm.settled();
    await scope.reset();

    const anonymous = await streamOnce(env, await anonToken());
    expect(anonymous.res.status).toBe(200);
    // The response exists: rate limits and quota are decided, in one command.
    expect(await scope.stats()).toEqual({ requests: 1, commands: 1 });
    await anonymous.res.text();
    await anonymous.settled();
    // After the response: the ledger record, and the metrics (METRICS_FLUSH_MS 0 in tests: no batching).
    expect(await scope.stats()).toEqual({ requests: 3, commands: 3 });

    await scope.reset();
    const user = await streamOnce(env, await supabaseHs256(supabaseClaims()));
    expect(user.res.status).toBe(200);
    expect(await scope.stats()).toEqual({ requests: 1, commands: 1 });
    await user.res.text();
    await user.settled();
    expect(await scope.stats()).toEqual({ requests: 3, commands: 3 });
  });

  it("touches no limit on a 422: its only store command is the metrics counter", async () => {
    const scope = upstashScope();
    const env = storeEnv("upstash", {}, scope);
    const called = await call(
      "/api/v1/stream?message=%20",
      { headers: bearer(await anonToken()) },
      env,
    );
    expect(called.res.status).toBe(422);
    await called.settled();
    expect(await scope.stats()).toEqual({ requests: 1, commands: 1 });
  });
});
