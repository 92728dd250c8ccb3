/**
 * @module Spend budgets, against both stores: holds under concurrency, the shrunk last stream,
 * settlement however a stream ends, expiry, replays, and a store that fails in between.
 */
import { afterEach, describe, expect, inject, it, vi } from "vitest";
import { parseConfig } from "../../src/config";
import type { Bindings } from "../../src/env";
import { ledgerRecord } from "../../src/ledger/record";
import { decideHold, type HoldTicket } from "../../src/limits/budget";
import { storeFor } from "../../src/limits/select-store";
import type { AdmissionRequest } from "../../src/limits/store";
import { holdPrice } from "../../src/stream/cost";
import { MODELS } from "../../src/stream/models";
import { call, json } from "../helpers/app";
import { usageOfToken } from "../helpers/gate";
import { openEvents, readEvents } from "../helpers/sse";
import {
  admissionRequest,
  pinClock,
  randomIp,
  type StoreKind,
  storeEnv,
  upstashScope,
} from "../helpers/stores";
import { anonToken, bearer, supabaseClaims, supabaseHs256 } from "../helpers/tokens";

// pinClock stops the clock for a test; the next starts with the real one.
afterEach(() => {
  vi.useRealTimers();
});

const upstreamBase = inject("upstreamUrl").replace(/\/v1$/, "");
const MODEL = MODELS["gpt-4o-mini"];
const CAP_USD = 0.02;
/** Every test message has this shape (a UUID is 36 characters), so every hold is the same. */
const messageFor = (id: string, directive: string) => `hi [[fake id=${id} ${directive}]]`;
/** The concurrency tests' streams: the upstream goes silent, so every hold stays live. */
const SILENT = "hang=1 usage=0";
const PRICE = holdPrice(
  MODEL,
  [{ role: "user", content: messageFor(crypto.randomUUID(), SILENT) }],
  CAP_USD * 1e6,
);
const FULL = decideHold(PRICE, []);
if (!FULL.ok) throw new Error("a full hold must pass");
const FULL_HOLD = FULL.holdMicroUsd;
/** 7.5 full holds, in whole µUSD: the eighth stream gets the half that is left. */
const BUDGET = 7 * FULL_HOLD + Math.floor(FULL_HOLD / 2);
const usd = (micro: number) => (micro / 1e6).toFixed(6);
/** No other test's traffic in these budgets: each test its own key space. */
const isolated = () => `b${crypto.randomUUID().slice(0, 8)}`;

/** The ledger record of a stream that cost 21 µUSD, settling `hold`. */
const settling = (userKey: string, startedAt: number, hold: HoldTicket, streamId = "s1") => ({
  ...ledgerRecord(
    {
      finishReason: "stop",
      inputTokens: 20,
      outputTokens: 30,
      costMicroUsd: 21,
      usageSource: "upstream",
      ttftMs: 5,
      durationMs: 9,
    },
    { streamId, userKey, model: MODEL.id, provider: "openai", startedAt },
  ),
  hold,
});

async function startStream(env: Bindings, token: string, ip: string, directive = "tokens=1") {
  const id = crypto.randomUUID();
  const query = new URLSearchParams({
    message: messageFor(id, directive),
    cost_cap_usd: String(CAP_USD),
  });
  const called = await call(`/api/v1/stream?${query}`, { headers: bearer(token), ip }, env);
  return { ...called, id };
}

async function upstreamMaxTokens(id: string): Promise<number | null> {
  const res = await fetch(`${upstreamBase}/__test/requests/${id}`);
  if (res.status !== 200) return null;
  return ((await res.json()) as { maxTokens: number | null }).maxTokens;
}

describe.each<StoreKind>(["durable_object", "upstash"])(
  "spend budgets with the %s store",
  (kind) => {
    // Only the budgets bind; a loaded test machine must not turn a slow store into a refusal.
    const wide = {
      RATE_LIMIT_USER: "1000/30s",
      RATE_LIMIT_IP: "1000/30s",
      LIMITS_TIMEOUT_MS: "15000",
    };

    it("admits exactly 8 of 100 concurrent streams against 7.5 holds of one user's budget, the last one shrunk", async () => {
      const env = storeEnv(kind, {
        ...wide,
        STORE_PREFIX: isolated(),
        BUDGET_USER_DAILY_USD: usd(BUDGET),
        BUDGET_GLOBAL_HOURLY_USD: "0",
        // The silent streams' owners hear of a cancelled body at the next heartbeat.
        HEARTBEAT_INTERVAL_MS: "200",
      });
      const token = await supabaseHs256(supabaseClaims());
      const ip = randomIp();
      const started = await Promise.all(
        Array.from({ length: 100 }, () => startStream(env, token, ip, SILENT)),
      );
      const admitted = started.filter((s) => s.res.status === 200);
      const refused = started.filter((s) => s.res.status !== 200);
      expect(admitted).toHaveLength(8);
      expect(refused).toHaveLength(92);
      for (const r of refused) {
        expect(r.res.status).toBe(429);
        const body = await json<{ error_code: string; detail: string }>(r.res);
        expect(body.error_code).toBe("budget_exceeded");
        expect(body.detail).toMatch(/user_daily/);
        // Holds, not settled spend, fill the budget: a short wait, not the end of the day.
        expect(Number(r.res.headers.get("Retry-After"))).toBeLessThanOrEqual(10);
        expect(await upstreamMaxTokens(r.id)).toBeNull();
      }
      // Exactly the eight holds are held: the refused ones hold nothing.
      const during = await usageOfToken(token, env);
      expect(Math.round((during.budget?.held_usd ?? 0) * 1e6)).toBe(BUDGET);

      const maxTokens = await Promise.all(admitted.map((s) => upstreamMaxTokens(s.id)));
      const shrunk = decideHold(PRICE, [{ limit: BUDGET, spent: 7 * FULL_HOLD, held: 0 }]);
      expect(shrunk.ok && shrunk.maxTokens).toBeLessThan(FULL.maxTokens);
      expect(maxTokens.sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual([
        shrunk.ok ? shrunk.maxTokens : -1,
        ...Array(7).fill(FULL.maxTokens),
      ]);

      // The clients leave; each stream settles what it cost (its prompt) in place of its hold.
      for (const s of admitted) {
        await s.res.body?.cancel();
        await s.settled();
      }
      const after = await usageOfToken(token, env);
      expect(after.budget?.held_usd).toBe(0);
      expect(after.budget?.spent_usd).toBeCloseTo(after.spend.today_usd, 9);
      expect(Math.round((after.budget?.spent_usd ?? 0) * 1e6)).toBeGreaterThan(0);
      expect(Math.round((after.budget?.spent_usd ?? 0) * 1e6)).toBeLessThanOrEqual(BUDGET);
    });

    it("admits exactly 8 of 100 identities against 7.5 holds of the shared anonymous budget", async () => {
      const env = storeEnv(kind, {
        ...wide,
        STORE_PREFIX: isolated(),
        BUDGET_ANON_DAILY_USD: "0",
        BUDGET_ANON_HOURLY_USD: usd(BUDGET),
        BUDGET_GLOBAL_HOURLY_USD: "0",
        // One shard: the shared budget decided whole, as exact as Upstash (sharding: below).
        BUDGET_SHARDS: "1",
        // A stream owner hears of a body cancelled without the request's signal at its next
        // write; the upstream here is silent, so the heartbeat is that write.
        HEARTBEAT_INTERVAL_MS: "200",
      });
      pinClock(3_600_000, 60_000);
      const tokens = await Promise.all(Array.from({ length: 100 }, () => anonToken()));
      const started = await Promise.all(tokens.map((t) => startStream(env, t, randomIp(), SILENT)));
      // Admitted by the budget: a 200, or (on a loaded machine) an upstream that failed to connect.
      const admitted = started.filter((s) => s.res.status !== 503);
      const refused = started.filter((s) => s.res.status === 503);
      expect(admitted).toHaveLength(8);
      for (const r of refused) {
        expect(r.res.status).toBe(503);
        const body = await json<{ error_code: string; detail: string }>(r.res);
        expect(body).toMatchObject({ error_code: "budget_exhausted" });
        expect(body.detail).toMatch(/anon_hourly/);
      }
      const maxTokens = await Promise.all(admitted.map((s) => upstreamMaxTokens(s.id)));
      // Seven full holds and one shrunk (an upstream that failed to connect never saw its max_tokens).
      const full = maxTokens.filter((m) => m === FULL.maxTokens).length;
      expect(full).toBeLessThanOrEqual(7);
      expect(full + maxTokens.filter((m) => m === null).length).toBeGreaterThanOrEqual(7);
      for (const s of admitted) {
        await s.res.body?.cancel();
        await s.settled();
      }
      const store = storeFor(parseConfig(env), env);
      const [shared] = await store.sharedBudgets(Date.now());
      expect(shared).toMatchObject({ name: "anon_hourly", limit: BUDGET, held: 0 });
      expect(shared?.spent).toBeGreaterThan(0);
      expect(shared?.spent).toBeLessThanOrEqual(BUDGET);
    });

    it("settles the hold exactly once however the stream ends: done, cap, upstream failure, client gone, max duration", async () => {
      const env = storeEnv(kind, {
        ...wide,
        STORE_PREFIX: isolated(),
        STREAM_MAX_DURATION_MS: "1000",
      });
      const token = await supabaseHs256(supabaseClaims());
      const ip = randomIp();
      const endings = [
        "tokens=3",
        "tokens=400 delay=2 ignoremax=1 text=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "tokens=50 cut=3 linger=30",
        "status=500",
        "tokens=50 delay=300",
      ];
      for (const directive of endings) {
        const s = await startStream(env, token, ip, directive);
        if (s.res.status === 200) await readEvents(s.res);
        await s.settled();
      }
      // The client that goes away after its first chunk.
      const gone = await startStream(env, token, ip, "tokens=50 delay=100");
      const reader = openEvents(gone.res);
      expect((await reader.next())?.event).toBe("message_chunk");
      await reader.cancel();
      await gone.settled();

      const u = await usageOfToken(token, env);
      expect(u.budget?.held_usd).toBe(0);
      expect(u.budget?.spent_usd).toBeGreaterThan(0);
      // The budget's spend and the ledger's are the same writes.
      expect(Math.round((u.budget?.spent_usd ?? 0) * 1e6)).toBe(
        Math.round(u.spend.today_usd * 1e6),
      );
    });

    it("counts a hold that expired unsettled as spent in full, until its record replaces it once", async () => {
      // Time is an input: admissions at chosen instants of yesterday (one window), none waited for.
      const day = 86_400_000;
      const t0 = Math.floor(Date.now() / day) * day - day + 3_600_000;
      const holdTtl = 1000 + 60_000;
      const limit = 2 * FULL_HOLD;
      const env = storeEnv(kind, {
        STORE_PREFIX: isolated(),
        STREAM_MAX_DURATION_MS: "1000",
        BUDGET_USER_DAILY_USD: usd(limit),
        BUDGET_GLOBAL_HOURLY_USD: "0",
      });
      const store = storeFor(parseConfig(env), env);
      const userKey = `supabase:${crypto.randomUUID()}`;
      const admission = (at: number) =>
        admissionRequest({ userKey, anonymous: false, price: PRICE, at });
      // Admitted, and never settled (its isolate died, its record could not be written).
      const stale = await store.admit(admission(t0));
      if (!stale.budget?.ok) throw new Error("admission refused");
      const later = t0 + holdTtl + 1_000;
      // Expired: it counts as spent (the provider may have billed all of it), never as freed.
      // So one full hold fits beside it, and nothing more.
      const fresh = await store.admit(admission(later));
      expect(fresh.budget).toMatchObject({ ok: true, maxTokens: FULL.maxTokens });
      const third = await store.admit(admission(later));
      expect(third.budget).toMatchObject({ ok: false, budget: "user_daily", settledOut: false });
      if (!fresh.budget?.ok) throw new Error("admission refused");
      // The stale stream's record arrives late (a replay): its 21 µUSD replace the full hold.
      const late = settling(userKey, t0, stale.budget.ticket);
      expect(await store.writeLedger(late)).toBe("written");
      expect(await store.writeLedger(late)).toBe("duplicate");
      const fourth = await store.admit(admission(later));
      const left = decideHold(PRICE, [{ limit, spent: 21, held: FULL_HOLD }]);
      if (!left.ok) throw new Error("the arithmetic must admit it");
      expect(left.holdMicroUsd).toBe(FULL_HOLD - 21);
      expect(fourth.budget).toMatchObject({ ok: true, maxTokens: left.maxTokens });
      // And nothing more: the replay above changed nothing.
      expect((await store.admit(admission(later))).budget).toMatchObject({ ok: false });
    });

    it("shows operators the shared budget's expired holds, and takes them out when their record arrives", async () => {
      const hour = 3_600_000;
      const t0 = Math.floor(Date.now() / hour) * hour - 2 * hour;
      const env = storeEnv(kind, {
        STORE_PREFIX: isolated(),
        STREAM_MAX_DURATION_MS: "1000",
        BUDGET_ANON_DAILY_USD: "0",
        BUDGET_ANON_HOURLY_USD: usd(4 * FULL_HOLD),
        BUDGET_GLOBAL_HOURLY_USD: "0",
        BUDGET_SHARDS: "1",
      });
      const store = storeFor(parseConfig(env), env);
      const userKey = `anonymous:anon_${crypto.randomUUID()}`;
      const stale = await store.admit(
        admissionRequest({ userKey, anonymous: true, price: PRICE, at: t0 }),
      );
      if (!stale.budget?.ok) throw new Error("admission refused");
      const later = t0 + 61_000 + 1_000;
      const [expired] = await store.sharedBudgets(later);
      expect(expired).toMatchObject({
        name: "anon_hourly",
        spent: FULL_HOLD,
        held: 0,
        expired: FULL_HOLD,
      });
      expect(await store.writeLedger(settling(userKey, t0, stale.budget.ticket))).toBe("written");
      const [settled] = await store.sharedBudgets(later);
      expect(settled).toMatchObject({ spent: 21, held: 0, expired: 0 });
    });

    it("counts a settlement replayed twice once", async () => {
      const env = storeEnv(kind, { STORE_PREFIX: isolated() });
      const store = storeFor(parseConfig(env), env);
      const claims = supabaseClaims();
      const token = await supabaseHs256(claims);
      const userKey = `supabase:${claims.sub}`;
      const now = Date.now();
      const decided = await store.admit(
        admissionRequest({ userKey, anonymous: false, price: PRICE, at: now }),
      );
      if (!decided.budget?.ok) throw new Error("admission refused");
      const withHold = settling(userKey, now, decided.budget.ticket);
      expect(await store.writeLedger(withHold)).toBe("written");
      expect(await store.writeLedger(withHold)).toBe("duplicate");
      const u = await usageOfToken(token, env);
      expect(u.budget).toMatchObject({ spent_usd: 21e-6, held_usd: 0 });
    });
  },
);

describe("shared budgets over Durable Object shards", () => {
  it("never holds more than the budget, and refuses only when no shard can pay for one token", async () => {
    const shards = 4;
    const env = storeEnv("durable_object", {
      RATE_LIMIT_IP: "1000/30s",
      LIMITS_TIMEOUT_MS: "60000",
      STORE_PREFIX: isolated(),
      BUDGET_ANON_DAILY_USD: "0",
      BUDGET_ANON_HOURLY_USD: usd(BUDGET),
      BUDGET_GLOBAL_HOURLY_USD: "0",
      BUDGET_SHARDS: String(shards),
    });
    pinClock(3_600_000, 60_000);
    const store = storeFor(parseConfig(env), env);
    // At the store, so only the budgets decide (no upstream, no HTTP under a loaded machine).
    const requests = Array.from({ length: 30 }, () =>
      admissionRequest({
        userKey: `anonymous:anon_${crypto.randomUUID()}`,
        anonymous: true,
        price: PRICE,
      }),
    );
    const decided = await Promise.all(requests.map((r) => store.admit(r)));
    const admitted = decided.filter((d) => d.budget?.ok);
    expect(admitted.length).toBeGreaterThanOrEqual(7);
    for (const d of decided.filter((x) => !x.budget?.ok))
      expect(d.budget).toMatchObject({ ok: false, budget: "anon_hourly" });
    const [during] = await store.sharedBudgets(Date.now());
    // The documented bound: what is left unheld is less than one token (and the prompt) per shard.
    const oneToken = PRICE.inputMicroUsd + Math.ceil(PRICE.outputPicoUsd / 1e6);
    expect(during?.held).toBeLessThanOrEqual(BUDGET);
    expect(BUDGET - (during?.held ?? 0)).toBeLessThan(shards * oneToken);
    // Each settles 21 µUSD in place of its hold, in the shard that held it.
    await Promise.all(
      decided.map(async (d, i) => {
        if (!d.budget?.ok) return;
        const r = requests[i] as AdmissionRequest;
        await store.writeLedger(settling(r.userKey, r.at, d.budget.ticket, `s${i}`));
      }),
    );
    const [after] = await store.sharedBudgets(Date.now());
    expect(after).toMatchObject({ held: 0, spent: 21 * admitted.length });
  });
});

describe("spend budgets when the store fails between admission and settlement", () => {
  it("keeps the hold until it expires, so the budget is never overspent (Upstash)", async () => {
    const scope = upstashScope();
    const env = storeEnv(
      "upstash",
      { BUDGET_USER_DAILY_USD: usd(FULL_HOLD + Math.floor(FULL_HOLD / 2)) },
      scope,
    );
    const store = storeFor(parseConfig(env), env);
    const userKey = `supabase:${crypto.randomUUID()}`;
    const admission = () => admissionRequest({ userKey, anonymous: false, price: PRICE });
    const first = await store.admit(admission());
    if (!first.budget?.ok) throw new Error("admission refused");
    const record = settling(userKey, Date.now(), first.budget.ticket);
    await scope.fault("error500");
    await expect(store.writeLedger(record)).rejects.toThrow();
    await scope.fault("none");
    // The unsettled hold still counts: the next stream gets only what is left beside it.
    const second = await store.admit(admission());
    const half = decideHold(PRICE, [
      { limit: FULL_HOLD + Math.floor(FULL_HOLD / 2), spent: 0, held: FULL_HOLD },
    ]);
    expect(second.budget).toMatchObject({ ok: true, maxTokens: half.ok ? half.maxTokens : -1 });
    expect((await store.admit(admission())).budget).toMatchObject({ ok: false });
    // The late settlement (its retry) still counts once.
    expect(await store.writeLedger(record)).toBe("written");
  });
});
