/**
 * @module The hold's arithmetic against literal numbers: `decideHold` itself, then both stores'
 * admissions (the Durable Object's TypeScript and the Upstash store's Lua) on the same cases,
 * so neither is only checked against the other.
 */
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config";
import { ledgerRecord } from "../../src/ledger/record";
import { decideHold, type HoldPrice, type HoldTicket } from "../../src/limits/budget";
import { storeFor } from "../../src/limits/select-store";
import type { Admission } from "../../src/limits/store";
import { admissionRequest, type StoreKind, storeEnv } from "../helpers/stores";

/** 300 µUSD of input at most, 0.6 µUSD per output token, a cap of 10,000 µUSD. */
const PRICE: HoldPrice = {
  capMicroUsd: 10_000,
  inputMicroUsd: 300,
  outputPicoUsd: 600_000,
  maxTokensCeiling: 16_384,
};

describe("decideHold", () => {
  it("holds the cap when no budget is tighter: (10,000 - 300) / 0.6 = 16,166 tokens", () => {
    expect(decideHold(PRICE, [])).toEqual({ ok: true, maxTokens: 16_166, holdMicroUsd: 10_000 });
  });

  it("stops at the ceiling of max_tokens: 300 + 100 x 0.6 = 360", () => {
    const price = { ...PRICE, maxTokensCeiling: 100 };
    expect(decideHold(price, [])).toEqual({ ok: true, maxTokens: 100, holdMicroUsd: 360 });
  });

  it("shrinks to what a budget has left: 5,000 - 1,000 spent - 500 held = 3,500", () => {
    const budgets = [{ limit: 5_000, spent: 1_000, held: 500 }];
    expect(decideHold(PRICE, budgets)).toEqual({ ok: true, maxTokens: 5_333, holdMicroUsd: 3_500 });
  });

  it("rounds the hold up, never down: 7 tokens at 0.7 µUSD are 4.9, held as 5, plus 1 of input", () => {
    const price = { capMicroUsd: 6, inputMicroUsd: 1, outputPicoUsd: 700_000, maxTokensCeiling: 7 };
    expect(decideHold(price, [])).toEqual({ ok: true, maxTokens: 7, holdMicroUsd: 6 });
  });

  it("takes the tightest of several budgets, in any order", () => {
    const loose = { limit: 100_000, spent: 0, held: 0 };
    const tight = { limit: 2_000, spent: 800, held: 0 };
    const expected = { ok: true, maxTokens: 1_500, holdMicroUsd: 1_200 };
    expect(decideHold(PRICE, [loose, tight])).toEqual(expected);
    expect(decideHold(PRICE, [tight, loose])).toEqual(expected);
  });

  it("refuses with the first budget that cannot pay for one token after the input", () => {
    // 300 µUSD left pays the input and not one token: held, so back when the hold settles.
    const held = { limit: 1_000, spent: 200, held: 500 };
    expect(decideHold(PRICE, [held])).toEqual({ ok: false, refusedBy: 0, settledOut: false });
    // 300.6 would pay for one; 300 spent out of 600 leaves exactly the input: back next window.
    const spent = { limit: 600, spent: 300, held: 0 };
    const decision = decideHold(PRICE, [{ limit: 10_000, spent: 0, held: 0 }, spent]);
    expect(decision).toEqual({ ok: false, refusedBy: 1, settledOut: true });
    // One µUSD more than the input pays for one token (1 µUSD buys 1.66 of them).
    expect(decideHold(PRICE, [{ limit: 301, spent: 0, held: 0 }])).toEqual({
      ok: true,
      maxTokens: 1,
      holdMicroUsd: 301,
    });
  });
});

/** A signed-in user's daily budget of 5,000 µUSD and nothing else held against. */
const ENV = {
  BUDGET_USER_DAILY_USD: "0.005",
  BUDGET_GLOBAL_HOURLY_USD: "0",
  RATE_LIMIT_USER: "1000/60s",
  RATE_LIMIT_IP: "1000/60s",
};

const budgetOf = (a: Admission) => a.budget;

describe.each<StoreKind>(["durable_object", "upstash"])("%s store: holds in numbers", (kind) => {
  it("holds 5,000 of a 5,000 µUSD budget, refuses while it is held, and holds what spending leaves", async () => {
    const env = storeEnv(kind, ENV);
    const store = storeFor(parseConfig(env), env);
    const userKey = `user:numbers-${crypto.randomUUID()}`;
    // One moment for every step: the budget's window is the same whatever the clock says.
    const at = Date.now();
    const admit = () =>
      store.admit(admissionRequest({ userKey, anonymous: false, price: PRICE, at }));
    const settle = (hold: HoldTicket, costMicroUsd: number) =>
      store.writeLedger({
        ...ledgerRecord(
          {
            finishReason: "stop",
            inputTokens: 1,
            outputTokens: 1,
            costMicroUsd,
            usageSource: "upstream",
            ttftMs: 1,
            durationMs: 1,
          },
          { streamId: hold.id, userKey, model: "m", provider: "p", startedAt: at },
        ),
        hold,
      });

    const first = budgetOf(await admit());
    expect(first).toMatchObject({ ok: true, maxTokens: 7_833, ticket: { microUsd: 5_000 } });
    // All 5,000 held: refused, but not settled out (it comes back when the hold settles).
    expect(budgetOf(await admit())).toMatchObject({
      ok: false,
      budget: "user_daily",
      settledOut: false,
    });
    if (!first?.ok) throw new Error("the first admission holds");
    await settle(first.ticket, 4_000);
    // 1,000 left: (1,000 - 300) / 0.6 = 1,166 tokens, held at 300 + ceil(699.6) = 1,000.
    const second = budgetOf(await admit());
    expect(second).toMatchObject({ ok: true, maxTokens: 1_166, ticket: { microUsd: 1_000 } });
    if (!second?.ok) throw new Error("the second admission holds");
    await settle(second.ticket, 800);
    // 200 left of 5,000 spent 4,800: not even the input; back only in the next window.
    expect(budgetOf(await admit())).toMatchObject({
      ok: false,
      budget: "user_daily",
      settledOut: true,
    });
  });
});
