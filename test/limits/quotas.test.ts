/**
 * @module Anonymous quotas and usage, one contract for both limit stores: the hourly and total
 * quotas under concurrency, what gives a unit back (a refused request, an upstream failure, a
 * refund, a cancelled admission), anonymous sessions minted per address, and usage reads that
 * spend nothing and have a window of their own.
 */
import { decodeJwt } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import { parseConfig } from "../../src/config";
import { storeFor } from "../../src/limits/select-store";
import { holdPrice } from "../../src/stream/cost";
import { MODELS } from "../../src/stream/models";
import { call } from "../helpers/app";
import { usageOf, usageOfToken } from "../helpers/gate";
import { admissionRequest, pinClock, randomIp, type StoreKind, storeEnv } from "../helpers/stores";
import { anonToken, bearer, supabaseClaims, supabaseHs256 } from "../helpers/tokens";
import { errorCode, stream } from "./limits-helpers";

// pinClock stops the clock for a test; the next starts with the real one.
afterEach(() => {
  vi.useRealTimers();
});

/** A fresh admission request of an anonymous caller. */
const anonymousAdmission = (userKey: string, ipKey: string, at: number) =>
  admissionRequest({
    userKey,
    ipKey,
    at,
    anonymous: true,
    price: holdPrice(MODELS["gpt-4o-mini"], [{ role: "user", content: "hello" }], 20_000),
  });

describe.each<StoreKind>(["durable_object", "upstash"])("limits with the %s store", (kind) => {
  it("lets exactly 20 of 25 simultaneous anonymous requests through and refuses the rest by quota", async () => {
    // Exact hourly counts: no turn of the hour during the test.
    pinClock(3_600_000, 60_000);
    // The quota binds here, not the anonymous daily budget (test/limits/budgets.test.ts).
    const env = storeEnv(kind, { BUDGET_ANON_DAILY_USD: "0" });
    const token = await anonToken();
    const ip = randomIp();
    const results = await Promise.all(Array.from({ length: 25 }, () => stream(env, token, ip)));
    expect(results.filter((r) => r.res.status === 200)).toHaveLength(20);
    const refused = results.filter((r) => r.res.status === 429);
    expect(refused).toHaveLength(5);
    for (const r of refused) {
      expect(errorCode(r.body)).toBe("quota_exceeded");
      expect(JSON.parse(r.body).detail).toMatch(/hourly/);
    }
    const u = await usageOf({ token, ip }, env);
    expect(u.quota?.hourly.remaining).toBe(0);
    expect(u.quota?.total.remaining).toBe(80);
  });

  it("ends the anonymous identity's streams at the total quota", async () => {
    // Exact hourly counts: no turn of the hour during the test.
    pinClock(3_600_000, 60_000);
    const env = storeEnv(kind, { ANON_QUOTA_TOTAL: "3" });
    const token = await anonToken();
    const ip = randomIp();
    const results = await Promise.all(Array.from({ length: 6 }, () => stream(env, token, ip)));
    expect(results.filter((r) => r.res.status === 200)).toHaveLength(3);
    for (const r of results.filter((x) => x.res.status === 429)) {
      expect(JSON.parse(r.body)).toMatchObject({ error_code: "quota_exceeded" });
      expect(JSON.parse(r.body).detail).toMatch(/total/);
    }
    expect((await usageOf({ token, ip }, env)).quota?.hourly.remaining).toBe(17);
  });

  it("spends no quota on a request the rate limit refused", async () => {
    const env = storeEnv(kind, { RATE_LIMIT_USER: "3/30s" });
    const token = await anonToken();
    const ip = randomIp();
    pinClock(30_000, 5_000);
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await stream(env, token, ip));
    expect(results.map((r) => r.res.status)).toEqual([200, 200, 200, 429, 429]);
    const u = await usageOf({ token, ip }, env);
    expect(u.quota?.hourly.remaining).toBe(17);
    expect(u.quota?.total.remaining).toBe(97);
  });

  it("gives the quota back when the upstream fails before its first token", async () => {
    const env = storeEnv(kind);
    const token = await anonToken();
    const ip = randomIp();
    const failed = await stream(env, token, ip, "status=500");
    expect(failed.res.status).toBe(502);
    expect(errorCode(failed.body)).toBe("upstream_error");
    const u = await usageOf({ token, ip }, env);
    expect(u.quota?.hourly.remaining).toBe(20);
    expect(u.quota?.total.remaining).toBe(100);
  });

  it("gives a refunded unit back to the hourly bucket it came from, never below zero", async () => {
    const env = storeEnv(kind, { ANON_QUOTA_HOURLY: "3" });
    const store = storeFor(parseConfig(env), env);
    const key = `anonymous:anon_${crypto.randomUUID()}`;
    const now = Date.now();
    const lastHour = now - 3_600_000;
    // Spent an hour ago, refunded now: the current bucket must not go to -1.
    const ipKey = `ip:${randomIp()}`;
    const admit = (at: number) => store.admit(anonymousAdmission(key, ipKey, at));
    expect((await admit(lastHour)).quota?.success).toBe(true);
    await store.refundQuota(key, lastHour);
    const results = [];
    for (let i = 0; i < 4; i++) results.push((await admit(now)).quota?.success);
    expect(results).toEqual([true, true, true, false]);
    // Total: one spent and refunded, three spent now.
    const u = await store.usage(key, `ip:${randomIp()}`, true);
    expect(u.quota?.total.remaining).toBe(97);
  });

  it("undoes a cancelled admission, and a cancelled admission that arrives late counts nothing", async () => {
    const env = storeEnv(kind, { RATE_LIMIT_USER: "5/30s", RATE_LIMIT_IP: "5/30s" });
    const store = storeFor(parseConfig(env), env);
    const userKey = `anonymous:anon_${crypto.randomUUID()}`;
    const ipKey = `ip:${randomIp()}`;
    pinClock(30_000, 5_000);
    const request = () => anonymousAdmission(userKey, ipKey, Date.now());
    // Counted, then cancelled (its answer was lost): everything comes back.
    const first = request();
    expect((await store.admit(first)).quota?.success).toBe(true);
    await store.cancelAdmission(first);
    await store.cancelAdmission(first);
    // Cancelled before it reached the store: when it arrives, it counts nothing.
    const late = request();
    await store.cancelAdmission(late);
    await expect(store.admit(late)).rejects.toThrow();
    // One admission that stands: only it is counted.
    const kept = request();
    expect((await store.admit(kept)).quota?.success).toBe(true);
    const u = await store.usage(userKey, ipKey, true);
    expect(u.user.remaining).toBe(4);
    expect(u.ip.remaining).toBe(4);
    expect(u.quota?.hourly.remaining).toBe(19);
    expect(u.quota?.total.remaining).toBe(99);
  });

  it("limits anonymous sessions minted per address per hour", async () => {
    const env = storeEnv(kind, { ANON_SESSIONS_PER_IP_HOURLY: "3" });
    const ip = randomIp();
    const statuses = [];
    let last: Response | undefined;
    for (let i = 0; i < 4; i++) {
      const { res } = await call(
        "/api/v1/anon_session",
        { method: "POST", headers: { "Content-Type": "application/json" }, ip },
        env,
      );
      statuses.push(res.status);
      last = res;
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect(await last?.json()).toMatchObject({ error_code: "too_many_sessions" });
    expect(Number(last?.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
    // Another address still mints.
    expect(
      (
        await call(
          "/api/v1/anon_session",
          { method: "POST", headers: { "Content-Type": "application/json" }, ip: randomIp() },
          env,
        )
      ).res.status,
    ).toBe(200);
  });

  it("shows usage without spending it", async () => {
    // Exact hourly counts: no turn of the hour during the test.
    pinClock(3_600_000, 60_000);
    const env = storeEnv(kind);
    const token = await anonToken();
    const ip = randomIp();
    const before = await usageOf({ token, ip }, env);
    const again = await usageOf({ token, ip }, env);
    expect(again.limits.user.remaining).toBe(before.limits.user.remaining);
    expect(again.quota?.hourly.remaining).toBe(20);
    expect((await stream(env, token, ip)).res.status).toBe(200);
    const after = await usageOf({ token, ip }, env);
    expect(after.limits.user.remaining).toBe(before.limits.user.remaining - 1);
    expect(after.quota?.hourly.remaining).toBe(19);
    expect(after.quota?.total.remaining).toBe(99);
    expect(after.spend.streams).toBe(1);
    expect(after.spend.total_usd).toBeGreaterThan(0);
    const sub = decodeJwt(token).sub;
    expect(sub).toMatch(/^anon_/);
  });

  it("limits usage reads per user in a window of their own, apart from the stream windows", async () => {
    const env = storeEnv(kind, { RATE_LIMIT_USAGE: "3/30s", RATE_LIMIT_USER: "5/30s" });
    const token = await anonToken();
    const ip = randomIp();
    pinClock(30_000, 5_000);
    const answers = [];
    for (let i = 0; i < 4; i++) {
      answers.push((await call("/api/v1/usage", { headers: bearer(token), ip }, env)).res);
    }
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 429]);
    expect(answers.map((r) => r.headers.get("RateLimit-Remaining"))).toEqual(["2", "1", "0", "0"]);
    const refused = answers[3] as Response;
    expect(await refused.json()).toMatchObject({ error_code: "rate_limited" });
    expect(Number(refused.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
    // The reads took nothing from the streams: the user's window (5) is whole.
    const streamed = await stream(env, token, ip);
    expect(streamed.res.status).toBe(200);
    expect(streamed.res.headers.get("RateLimit-Remaining")).toBe("4");
  });

  it("shows no quota for a signed-in user", async () => {
    const env = storeEnv(kind);
    const u = await usageOfToken(await supabaseHs256(supabaseClaims()), env);
    expect(u.quota).toBeNull();
  });
});
