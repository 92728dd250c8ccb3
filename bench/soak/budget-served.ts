/**
 * @module The budget soak judged by the provider's tokenizer: the fake upstream bills every
 * request it served with o200k (test/support/fake-bill.ts), and each budget's o200k-served cost
 * must be at most what the gateway recorded against it (the gateway never undercounts, also for
 * the streams whose final usage never came) and at most its limit.
 */
import { MODELS } from "../../src/stream/models";
import type { FakeBill } from "../../test/support/upstream-record";
import { getJson } from "../lib/client";
import { type BudgetSent, type Caller, LIMITS_MICRO, type StreamKind } from "./budget-plan";
import type { CallerReading } from "./budget-read";

/** One request's bill as GET /__test/bills lists it. */
export type ServedBill = FakeBill & { id: string; model: string; clientAborted: boolean };

/** The bills of every request whose id starts with `prefix`. */
export async function readBills(upstreamUrl: string, prefix: string): Promise<ServedBill[]> {
  const { status, body } = await getJson<ServedBill[]>(
    `${upstreamUrl}/__test/bills?prefix=${encodeURIComponent(prefix)}`,
  );
  if (status !== 200 || !Array.isArray(body)) throw new Error(`bills answered ${status}`);
  return body;
}

const PICO = Object.fromEntries(
  Object.values(MODELS).map((m) => [
    m.upstreamName,
    {
      input: Math.round(m.inputUsdPerMillion * 1e6),
      output: Math.round(m.outputUsdPerMillion * 1e6),
    },
  ]),
);

/** A bill in µUSD at the provider's price, rounded up per request as the gateway rounds a record. */
export function billMicroUsd(b: ServedBill): number {
  const p = PICO[b.model];
  if (!p) throw new Error(`no price for ${b.model}`);
  return Math.ceil((b.promptTokens * p.input + b.completionTokens * p.output) / 1e6);
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** What the judge needs: the streams, the callers with their final readings, the bills. */
export interface ServedData {
  sent: BudgetSent[];
  callers: Caller[];
  own: CallerReading[];
  shared: Record<string, { spent: number }>;
  ends: Map<string, { costMicro: number }>;
  bills: ServedBill[];
}

/** o200k-served against recorded, per budget, per kind of stream and per stream. */
export function judgeServed(d: ServedData) {
  const bills = new Map(d.bills.map((b) => [b.id, b]));
  const byId = new Map(d.sent.map((s) => [s.streamId, s]));
  const served = (s: BudgetSent) => {
    const b = bills.get(s.streamId);
    return b ? billMicroUsd(b) : 0;
  };
  const callerKey = (c: Caller) => `${c.anonymous ? "a" : "u"}${c.index}`;
  const perCaller = new Map<string, number>();
  for (const s of d.sent) {
    const k = callerKey(s.caller);
    perCaller.set(k, (perCaller.get(k) ?? 0) + served(s));
  }
  const ownRow = (anonymous: boolean) => {
    const name = anonymous ? "anon_daily" : "user_daily";
    const rows = d.callers
      .map((c, i) => ({ c, u: d.own[i] as CallerReading }))
      .filter(({ c }) => c.anonymous === anonymous)
      .map(({ c, u }) => ({ served: perCaller.get(callerKey(c)) ?? 0, recorded: u.budget.spent }));
    return {
      limit_micro_usd: LIMITS_MICRO[name],
      recorded_micro_usd: sum(rows.map((r) => r.recorded)),
      served_micro_usd: sum(rows.map((r) => r.served)),
      max_recorded_micro_usd: Math.max(...rows.map((r) => r.recorded)),
      max_served_micro_usd: Math.max(...rows.map((r) => r.served)),
      served_over_recorded: rows.filter((r) => r.served > r.recorded).length,
      served_over_limit: rows.filter((r) => r.served > LIMITS_MICRO[name]).length,
    };
  };
  const sharedRow = (name: "anon_hourly" | "global_hourly") => {
    const streams = d.sent.filter((s) => name === "global_hourly" || s.caller.anonymous);
    const servedMicro = sum(streams.map(served));
    const recorded = d.shared[name]?.spent ?? 0;
    return {
      limit_micro_usd: LIMITS_MICRO[name],
      recorded_micro_usd: recorded,
      served_micro_usd: servedMicro,
      served_over_recorded: servedMicro > recorded ? 1 : 0,
      served_over_limit: servedMicro > LIMITS_MICRO[name] ? 1 : 0,
    };
  };
  const budgets = {
    user_daily: ownRow(false),
    anon_daily: ownRow(true),
    anon_hourly: sharedRow("anon_hourly"),
    global_hourly: sharedRow("global_hourly"),
  };
  // Per kind and per stream (informative: the rule is per budget, and a record may stand a few
  // tokens below a bill when the upstream wrote chunks the gateway never read before it left).
  const kinds = (["plain", "adversarial", "reasoning"] as StreamKind[]).map((kind) => {
    const of = d.sent.filter((s) => s.kind === kind);
    const admitted = of.filter((s) => s.r.status === 200);
    const billed = of.filter((s) => bills.has(s.streamId));
    return {
      kind,
      sent: of.length,
      admitted: admitted.length,
      left_after_first_chunk: of.filter((s) => s.r.aborted === "after_headers" && s.r.tokens >= 1)
        .length,
      left_before_first_chunk: of.filter((s) => s.r.aborted === "after_headers" && s.r.tokens === 0)
        .length,
      cut_while_thinking: billed.filter((s) => bills.get(s.streamId)?.cutWhileThinking).length,
      completed: of.filter((s) => s.r.terminal === "done").length,
      billed: billed.length,
      served_micro_usd: sum(billed.map(served)),
      recorded_micro_usd: sum(of.map((s) => d.ends.get(s.streamId)?.costMicro ?? 0)),
      streams_recorded_below_served: billed.filter(
        (s) => served(s) > (d.ends.get(s.streamId)?.costMicro ?? 0),
      ).length,
    };
  });
  // The streams recorded furthest below their bill, to tell why when a budget's check fails.
  const worst = d.sent
    .filter((s) => bills.has(s.streamId))
    .map((s) => ({ s, gap: served(s) - (d.ends.get(s.streamId)?.costMicro ?? 0) }))
    .filter((x) => x.gap > 0)
    .sort((a, b) => b.gap - a.gap)
    .slice(0, 5)
    .map(({ s, gap }) => ({
      stream_id: s.streamId,
      kind: s.kind,
      plan: s.plan,
      anonymous: s.caller.anonymous,
      status: s.r.status,
      tokens_seen_by_client: s.r.tokens,
      bill: bills.get(s.streamId),
      recorded_micro_usd: d.ends.get(s.streamId)?.costMicro ?? null,
      below_by_micro_usd: gap,
    }));
  const rows = Object.values(budgets);
  return {
    budgets,
    kinds,
    bills: d.bills.length,
    bills_of_no_stream: d.bills.filter((b) => !byId.has(b.id)).length,
    streams_furthest_below_their_bill: worst,
    checks: {
      o200k_served_never_above_recorded: rows.every((b) => b.served_over_recorded === 0),
      o200k_served_within_every_budget: rows.every((b) => b.served_over_limit === 0),
    },
  };
}

/** The o200k part of one store's budget run. */
export type ServedVerdict = ReturnType<typeof judgeServed>;
