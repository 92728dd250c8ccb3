/**
 * @module IPv6 limits per /64 and per /48, Retry-After from the window's own arithmetic, and the
 * isolate's memory of refusals (which spares the store), against both stores.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { parseConfig } from "../../src/config";
import type { Bindings } from "../../src/env";
import { storeFor } from "../../src/limits/select-store";
import { holdPrice } from "../../src/stream/cost";
import { MODELS } from "../../src/stream/models";
import { call } from "../helpers/app";
import {
  admissionRequest,
  pinClock,
  randomIp,
  type StoreKind,
  storeEnv,
  upstashScope,
} from "../helpers/stores";
import { bearer, supabaseClaims, supabaseHs256 } from "../helpers/tokens";

// pinClock stops the clock for a test; the next starts with the real one.
afterEach(() => {
  vi.useRealTimers();
});

const r16 = () => Math.floor(Math.random() * 65_536).toString(16);
/** A random /48 of 2001:db8::/32, and an address in its `n`th /64. */
const slash48 = () => `2001:db8:${r16()}`;
const inSlash64 = (prefix: string, n: number) => `${prefix}:${n.toString(16)}::${r16()}`;
const JSON_TYPE = { "Content-Type": "application/json" };

/** Mints, and waits for the request's after-response work (its metrics write). */
async function mint(env: Bindings, ip: string) {
  const called = await call(
    "/api/v1/anon_session",
    { method: "POST", headers: JSON_TYPE, body: "{}", ip },
    env,
  );
  await called.res.arrayBuffer();
  await called.settled();
  return called;
}

async function streamStatus(env: Bindings, ip: string): Promise<number> {
  const token = await supabaseHs256(supabaseClaims());
  const { res, settled } = await call(
    "/api/v1/stream?message=hi%20%5B%5Bfake%20tokens%3D1%5D%5D",
    { headers: bearer(token), ip },
    env,
  );
  await res.text();
  await settled();
  return res.status;
}

describe.each<StoreKind>(["durable_object", "upstash"])("limits with the %s store", (kind) => {
  it("limits minting per /64 and, at four times the limit, per /48", async () => {
    const env = storeEnv(kind, { ANON_SESSIONS_PER_IP_HOURLY: "2" });
    const prefix = slash48();
    const statuses: number[] = [];
    // Twelve /64s of one /48, one mint each: the /48 allows 4 × 2.
    for (let n = 0; n < 12; n++) statuses.push((await mint(env, inSlash64(prefix, n))).res.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(8);
    expect(statuses.slice(8)).toEqual([429, 429, 429, 429]);
    // Another /48 is not affected; one /64 still has its own limit of 2.
    const other = slash48();
    const own = [];
    for (let i = 0; i < 3; i++) own.push((await mint(env, inSlash64(other, 0))).res.status);
    expect(own).toEqual([200, 200, 429]);
  });

  it("limits streams per /64 and, at four times the limit, per /48, in the same decision", async () => {
    const env = storeEnv(kind, { RATE_LIMIT_IP: "2/30s" });
    const prefix = slash48();
    const statuses: number[] = [];
    // The twelve streams stay in one 30 s bucket: past its end the first eight weigh less than
    // eight, and a ninth would pass.
    pinClock(30_000, 10_000);
    for (let n = 0; n < 12; n++) statuses.push(await streamStatus(env, inSlash64(prefix, n)));
    expect(statuses.filter((s) => s === 200)).toHaveLength(8);
    expect(statuses.slice(8)).toEqual([429, 429, 429, 429]);
  });

  it("answers a Retry-After at which the same request passes, and one second earlier does not", async () => {
    // Only the quota binds here, not the anonymous budgets.
    const env = storeEnv(kind, { BUDGET_ANON_DAILY_USD: "0", BUDGET_ANON_HOURLY_USD: "0" });
    const store = storeFor(parseConfig(env), env);
    const userKey = `anonymous:anon_${crypto.randomUUID()}`;
    const price = holdPrice(MODELS["gpt-4o-mini"], [{ role: "user", content: "hi" }], 20_000);
    const admission = (at: number) => admissionRequest({ userKey, anonymous: true, price, at });
    // The case: 20 streams at :16 of one hour, then one at 1 s past the next hour.
    const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000;
    const early = hour - 3_600_000 + 16 * 60_000;
    for (let i = 0; i < 20; i++)
      expect((await store.admit(admission(early))).quota?.success).toBe(true);
    const at = hour + 1_000;
    // The last hour's 20 weigh 19 now: one more passes, the next is refused.
    expect((await store.admit(admission(at))).quota?.success).toBe(true);
    const refused = await store.admit(admission(at));
    expect(refused.quota?.exhausted).toBe("hourly");
    const retryAt = refused.quota?.hourly.retryAt ?? 0;
    const retryAfter = Math.ceil((retryAt - at) / 1000);
    // Not the end of the window (about an hour): a slot frees in about three minutes.
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThan(300);
    expect((await store.admit(admission(at + (retryAfter - 1) * 1000))).quota?.success).toBe(false);
    expect((await store.admit(admission(at + retryAfter * 1000))).quota?.success).toBe(true);
  });
});

describe("refusals the isolate remembers", () => {
  it("spends one store call on a flood of refused mints from one address", async () => {
    const scope = upstashScope();
    const env = storeEnv("upstash", { ANON_SESSIONS_PER_IP_HOURLY: "10" }, scope);
    const ip = randomIp();
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) statuses.push((await mint(env, ip)).res.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(30);
    // Ten mints and the first refusal reach the store; the other 29 refusals do not. (Every
    // request also writes its metrics: one call each here, batched per isolate in production.)
    // (A script's first use may cost one EVAL more.) Before the isolate remembered, it was 80.
    const flood = (await scope.stats()).requests;
    expect(flood - 40).toBeLessThanOrEqual(12);
    // Ten more refusals: their metrics writes, and not one call for the limit.
    for (let i = 0; i < 10; i++) {
      const refused = await mint(env, ip);
      expect(refused.res.status).toBe(429);
      // A remembered refusal still carries its Retry-After.
      expect(Number(refused.res.headers.get("Retry-After"))).toBeGreaterThan(0);
    }
    expect((await scope.stats()).requests - flood).toBe(10);
  });

  it("refuses a rate-limited user again without asking the store, and never admits from memory", async () => {
    const scope = upstashScope();
    const env = storeEnv("upstash", { RATE_LIMIT_USER: "2/30s" }, scope);
    const token = await supabaseHs256(supabaseClaims());
    const send = async () => {
      const { res, settled } = await call(
        "/api/v1/stream?message=hi%20%5B%5Bfake%20tokens%3D1%5D%5D",
        { headers: bearer(token), ip: randomIp() },
        env,
      );
      await res.text();
      await settled();
      return res;
    };
    expect((await send()).status).toBe(200);
    expect((await send()).status).toBe(200);
    // Each request writes its metrics (one call here); a refusal asks the store once more.
    const before = (await scope.stats()).requests;
    const refused = await send();
    expect(refused.status).toBe(429);
    const afterFirst = (await scope.stats()).requests;
    expect(afterFirst).toBe(before + 2);
    for (let i = 0; i < 10; i++) expect((await send()).status).toBe(429);
    expect((await scope.stats()).requests).toBe(afterFirst + 10);
  });
});
