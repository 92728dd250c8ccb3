/**
 * @module The rate windows, one contract for both limit stores: exact counts per user and per
 * client address under concurrency and across a window boundary, which window refused and that the
 * other counted nothing, the RateLimit and Retry-After headers, and what one client address is
 * (an IPv6 /64, an IPv4-mapped address, CF-Connecting-IP only, required in production).
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { call } from "../helpers/app";
import { upstreamRecord, usageOf, usageOfToken } from "../helpers/gate";
import { pinClock, randomIp, type StoreKind, storeEnv } from "../helpers/stores";
import { anonToken, bearer, supabaseClaims, supabaseHs256 } from "../helpers/tokens";
import { errorCode, stream } from "./limits-helpers";

// pinClock stops the clock for a test; the next starts with the real one.
afterEach(() => {
  vi.useRealTimers();
});

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
    expect(await upstreamRecord(refused.id)).toBeNull();
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
    expect(await upstreamRecord(limited.id)).toBeNull();
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
