/** @module One contract suite for both limit stores: exact counts, quotas, refunds, headers. */
import { decodeJwt } from "jose";
import { afterEach, describe, expect, inject, it, vi } from "vitest";
import { parseConfig } from "../../src/config";
import type { Bindings } from "../../src/env";
import { storeFor } from "../../src/limits/select-store";
import { holdPrice } from "../../src/stream/cost";
import { MODELS } from "../../src/stream/models";
import { call } from "../helpers/app";
import { usageOf, usageOfToken } from "../helpers/gate";
import { admissionRequest, pinClock, randomIp, type StoreKind, storeEnv } from "../helpers/stores";
import { anonToken, bearer, supabaseClaims, supabaseHs256 } from "../helpers/tokens";

// pinClock stops the clock for a test; the next starts with the real one.
afterEach(() => {
  vi.useRealTimers();
});

const upstreamBase = inject("upstreamUrl").replace(/\/v1$/, "");

/** Sends one stream request; the fake upstream answers one token under directive `id`. */
async function stream(env: Bindings, token: string, ip: string, directive = "tokens=1") {
  const id = crypto.randomUUID();
  const message = encodeURIComponent(`hi [[fake id=${id} ${directive}]]`);
  const called = await call(
    `/api/v1/stream?message=${message}`,
    { headers: bearer(token), ip },
    env,
  );
  const body = await called.res.text();
  await called.settled();
  return { res: called.res, body, id };
}

async function upstreamSaw(id: string): Promise<boolean> {
  return (await fetch(`${upstreamBase}/__test/requests/${id}`)).status === 200;
}

/** A fresh admission request of an anonymous caller. */
const anonymousAdmission = (userKey: string, ipKey: string, at: number) =>
  admissionRequest({
    userKey,
    ipKey,
    at,
    anonymous: true,
    price: holdPrice(MODELS["gpt-4o-mini"], [{ role: "user", content: "hello" }], 20_000),
  });

const errorCode = (body: string) => (JSON.parse(body) as { error_code: string }).error_code;

describe.each<StoreKind>(["durable_object", "upstash"])("limits with the %s store", (kind) => {
  it("lets exactly 30 of 100 simultaneous requests from one user through", async () => {
    // Only the user's window binds here. (Were the address's 60 to bind in the same burst, the
    // Durable Object store, whose two objects decide in parallel, could refuse one more than an
    // atomic decision would; never let one more through. docs/security.md, "Where the limits live".)
    const env = storeEnv(kind, { RATE_LIMIT_IP: "1000/30s" });
    const token = await supabaseHs256(supabaseClaims());
    pinClock(30_000, 5_000);
    const ip = randomIp();
    const results = await Promise.all(Array.from({ length: 100 }, () => stream(env, token, ip)));
    const ok = results.filter((r) => r.res.status === 200);
    const limited = results.filter((r) => r.res.status === 429);
    expect(ok).toHaveLength(30);
    expect(limited).toHaveLength(70);
    for (const r of limited) expect(errorCode(r.body)).toBe("rate_limited");
  });

  it("lets exactly 20 of 25 simultaneous anonymous requests through and refuses the rest by quota", async () => {
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

  it("keeps a burst that straddles two windows within twice the limit", async () => {
    const windowMs = 2_000;
    const env = storeEnv(kind, { RATE_LIMIT_USER: "5/2s" });
    const token = await supabaseHs256(supabaseClaims());
    const ip = randomIp();
    // The first burst late in a bucket, the second just after the boundary.
    const bucket = Math.floor(Date.now() / windowMs) * windowMs;
    vi.useFakeTimers({ toFake: ["Date"], now: bucket + windowMs * 0.7 });
    const first = await Promise.all(Array.from({ length: 10 }, () => stream(env, token, ip)));
    vi.setSystemTime(bucket + windowMs + 30);
    const second = await Promise.all(Array.from({ length: 10 }, () => stream(env, token, ip)));
    const passed = (rs: { res: Response }[]) => rs.filter((r) => r.res.status === 200).length;
    expect(passed(first)).toBe(5);
    expect(passed(second)).toBeLessThanOrEqual(5);
    expect(passed(first) + passed(second)).toBeLessThanOrEqual(10);
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

  it("counts nothing for a request the per-IP window refused: no user hit, no quota", async () => {
    const env = storeEnv(kind, { RATE_LIMIT_IP: "3/30s", RATE_LIMIT_USER: "2/30s" });
    const token = await anonToken();
    const [crowded, own] = [randomIp(), randomIp()];
    pinClock(30_000, 5_000);
    // Other users fill the crowded address's window.
    for (let i = 0; i < 3; i++) {
      expect((await stream(env, await supabaseHs256(supabaseClaims()), crowded)).res.status).toBe(
        200,
      );
    }
    const refused = await stream(env, token, crowded);
    expect(refused.res.status).toBe(429);
    expect(JSON.parse(refused.body).detail).toMatch(/per-IP/);
    expect(await upstreamSaw(refused.id)).toBe(false);
    const u = await usageOf({ token, ip: own }, env);
    expect(u.limits.user.remaining).toBe(2);
    expect(u.quota?.hourly.remaining).toBe(20);
    expect(u.quota?.total.remaining).toBe(100);
    // The user's whole window is still there, from another address.
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await stream(env, token, own));
    expect(results.map((r) => r.res.status)).toEqual([200, 200, 429]);
    expect(JSON.parse(results[2]?.body ?? "{}").detail).toMatch(/per-user/);
  });

  it("counts nothing against the address for a request the per-user window refused", async () => {
    const env = storeEnv(kind, { RATE_LIMIT_IP: "3/30s", RATE_LIMIT_USER: "1/30s" });
    const token = await supabaseHs256(supabaseClaims());
    const ip = randomIp();
    pinClock(30_000, 5_000);
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await stream(env, token, ip)).res.status);
    expect(statuses).toEqual([200, 429, 429]);
    const u = await usageOf({ token: await supabaseHs256(supabaseClaims()), ip }, env);
    expect(u.limits.ip.remaining).toBe(2);
  });

  it("limits one client address across users, and says it was the per-IP limit", async () => {
    const env = storeEnv(kind, { RATE_LIMIT_IP: "3/30s" });
    const ip = randomIp();
    pinClock(30_000, 5_000);
    const statuses = [];
    let last = "";
    for (let i = 0; i < 4; i++) {
      const r = await stream(env, await supabaseHs256(supabaseClaims()), ip);
      statuses.push(r.res.status);
      last = r.body;
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect(JSON.parse(last)).toMatchObject({ error_code: "rate_limited" });
    expect(JSON.parse(last).detail).toMatch(/per-IP/);
  });

  it("counts one IPv6 /64 as one client and ignores X-Forwarded-For", async () => {
    const env = storeEnv(kind, { RATE_LIMIT_IP: "2/30s" });
    pinClock(30_000, 5_000);
    const prefix = `2001:db8:${Math.floor(Math.random() * 65_535).toString(16)}:7`;
    const send = async (ip: string, xff?: string) => {
      const token = await supabaseHs256(supabaseClaims());
      const message = encodeURIComponent(`hi [[fake tokens=1]]`);
      const headers: Record<string, string> = { ...bearer(token) };
      if (xff) headers["X-Forwarded-For"] = xff;
      const r = await call(`/api/v1/stream?message=${message}`, { headers, ip }, env);
      await r.res.text();
      await r.settled();
      return r.res.status;
    };
    expect(await send(`${prefix}::1`)).toBe(200);
    expect(await send(`${prefix}:0:0:0:2`, "192.0.2.1")).toBe(200);
    expect(await send(`${prefix.toUpperCase()}::abcd`, "192.0.2.2")).toBe(429);
    // Another /64 is another client.
    expect(await send(`${prefix.replace(/:7$/, ":8")}::1`)).toBe(200);
  });

  it("counts ::ffff:a.b.c.d as a.b.c.d", async () => {
    const env = storeEnv(kind, { RATE_LIMIT_IP: "1/30s" });
    pinClock(30_000, 5_000);
    const v4 = randomIp();
    const first = await stream(env, await supabaseHs256(supabaseClaims()), v4);
    const second = await stream(env, await supabaseHs256(supabaseClaims()), `::ffff:${v4}`);
    expect([first.res.status, second.res.status]).toEqual([200, 429]);
  });

  it("sends Retry-After and RateLimit headers on a 429, and RateLimit headers on a stream", async () => {
    const env = storeEnv(kind, { RATE_LIMIT_USER: "1/30s" });
    const token = await supabaseHs256(supabaseClaims());
    const ip = randomIp();
    pinClock(30_000, 5_000);
    const ok = await stream(env, token, ip);
    expect(ok.res.status).toBe(200);
    expect(ok.res.headers.get("RateLimit-Limit")).toBe("1");
    expect(ok.res.headers.get("RateLimit-Remaining")).toBe("0");
    expect(Number(ok.res.headers.get("RateLimit-Reset"))).toBeGreaterThanOrEqual(1);

    const limited = await stream(env, token, ip);
    expect(limited.res.status).toBe(429);
    const retry = limited.res.headers.get("Retry-After") ?? "";
    expect(retry).toMatch(/^\d+$/);
    expect(Number(retry)).toBeGreaterThanOrEqual(1);
    expect(Number(retry)).toBeLessThanOrEqual(30);
    expect(JSON.parse(limited.body).retry_after).toBe(Number(retry));
    expect(limited.res.headers.get("RateLimit-Remaining")).toBe("0");
    expect(await upstreamSaw(limited.id)).toBe(false);
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

describe("the client address", () => {
  it("is required in production: without CF-Connecting-IP the stream is refused before any spending", async () => {
    const env = storeEnv("durable_object", {
      ENVIRONMENT: "production",
      OPENAI_BASE_URL: "https://api.openai.com/v1",
      // Production refuses plain-http addresses; the test env's point at loopback servers.
      SUPABASE_URL: "https://abcdefghijklmnop.supabase.co",
      SUPABASE_JWKS_URL: undefined,
    });
    const token = await anonToken();
    const message = encodeURIComponent("hi [[fake tokens=1]]");
    const { res } = await call(
      `/api/v1/stream?message=${message}`,
      { headers: bearer(token), ip: null },
      env,
    );
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error_code: "limits_unavailable" });
    expect(Number(res.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
    const u = await usageOfToken(token, env);
    expect(u.quota?.hourly.remaining).toBe(20);
  });

  it("falls back to loopback in development", async () => {
    const env = storeEnv("durable_object");
    const token = await supabaseHs256(supabaseClaims());
    const message = encodeURIComponent("hi [[fake tokens=1]]");
    const { res } = await call(
      `/api/v1/stream?message=${message}`,
      { headers: bearer(token), ip: null },
      env,
    );
    expect(res.status).toBe(200);
    await res.text();
  });
});
