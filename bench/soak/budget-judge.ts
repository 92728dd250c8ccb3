/**
 * @module The budget run's verdict: spend against every budget (from the ledger and from the
 * budgets themselves), what an exhausted budget left unused, and settlements lost or doubled.
 */
import type { StreamResult } from "../lib/client";
import { round } from "../lib/stats";
import { type BudgetSent, type Caller, gapBound, LIMITS_MICRO } from "./budget-plan";
import type { BudgetReading, CallerReading, StoredRecord } from "./budget-read";
import { judgeServed, type ServedBill } from "./budget-served";

type Reading = {
  shared: Record<string, BudgetReading & { refused_last_hour: number }>;
  own: CallerReading[];
  waited_ms: number;
};

/** Everything the run collected. */
export interface BudgetRunData {
  store: "upstash" | "do";
  startedAt: string;
  shards: number;
  load: BudgetSent[];
  loadMs: number;
  drain: BudgetSent[];
  drainExhausted: boolean;
  afterLoad: Reading;
  afterDrain: Reading;
  /** Anonymous callers first, in the order of the readings. */
  callers: Caller[];
  ends: Map<string, { lines: number; costMicro: number }>;
  records: StoredRecord[] | null;
  ledgerFailures: number;
  refusedBy: (r: StreamResult) => string | null;
  addresses: number;
  /** The fake upstream's o200k bills of this run's requests. */
  bills: ServedBill[];
}

/** An exhausted budget may leave this fraction of itself unused when that is above its per-shard bound. */
export const SMALL_GAP = 0.02;

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const callerId = (c: Caller) => `${c.anonymous ? "anon" : "user"}${c.index}`;

/**
 * How many requests ended how: "aborted before headers", "no answer: <failure>", or the status
 * with its error code (`429 rate_limited`). Shared with the main soak (bench/soak.ts).
 */
export function statusCounts(sent: readonly { r: StreamResult }[]): Record<string, number> {
  const statuses: Record<string, number> = {};
  for (const s of sent) {
    const k =
      s.r.aborted === "before_headers"
        ? "aborted before headers"
        : s.r.status === 0
          ? `no answer: ${s.r.failure}`
          : `${s.r.status}${s.r.errorCode ? ` ${s.r.errorCode}` : ""}`;
    statuses[k] = (statuses[k] ?? 0) + 1;
  }
  return statuses;
}

/** Judges one store's budget run; `checks` all true means it passed. */
export function judgeBudgetRun(d: BudgetRunData) {
  const sent = [...d.load, ...d.drain];
  const admitted = sent.filter((s) => s.r.status === 200);
  const statuses = statusCounts(sent);
  // When each budget first refused in the load, as a fraction of the load.
  const firstRefusal: Record<string, number | null> = {};
  const refusals: Record<string, number> = {};
  for (const name of Object.keys(LIMITS_MICRO)) firstRefusal[name] = null;
  d.load.forEach((s, i) => {
    const b = d.refusedBy(s.r);
    if (!b) return;
    refusals[b] = (refusals[b] ?? 0) + 1;
    if (firstRefusal[b] === null) firstRefusal[b] = round(i / d.load.length, 3);
  });

  // Settlements: every admitted stream has exactly one stream_end line and one ledger record.
  const byCaller = new Map<string, string[]>();
  for (const s of sent) {
    const k = callerId(s.caller);
    byCaller.set(k, [...(byCaller.get(k) ?? []), s.streamId]);
  }
  const endsMissing = admitted.filter((s) => !d.ends.has(s.streamId)).length;
  const endsDoubled = [...d.ends.values()].filter((e) => e.lines > 1).length;
  let lost = 0;
  let doubled = 0;
  let unexpected = 0;
  let ledgerVsLines = 0;
  const records = d.records;
  const recordCount = new Map<string, number>();
  if (records) {
    for (const r of records) recordCount.set(r.streamId, (recordCount.get(r.streamId) ?? 0) + 1);
    lost = [...d.ends.keys()].filter((id) => !recordCount.has(id)).length;
    lost += admitted.filter((s) => !recordCount.has(s.streamId) && !d.ends.has(s.streamId)).length;
    doubled = [...recordCount.values()].filter((n) => n > 1).length;
    unexpected = [...recordCount.keys()].filter((id) => !d.ends.has(id)).length;
  }
  // Per caller (both stores): the ledger's stream count and spend against the stream_end lines.
  const final = d.afterDrain;
  d.callers.forEach((c, i) => {
    const ids = (byCaller.get(callerId(c)) ?? []).filter((id) => d.ends.has(id));
    const lines = ids.length;
    const cost = sum(ids.map((id) => d.ends.get(id)?.costMicro ?? 0));
    const u = final.own[i] as CallerReading;
    if (!records) {
      if (u.ledgerStreams < lines) lost += lines - u.ledgerStreams;
      if (u.ledgerStreams > lines) doubled += u.ledgerStreams - lines;
    }
    ledgerVsLines += Math.abs(u.ledgerTodayMicro - cost);
  });
  const recordSpend = records ? sum(records.map((r) => r.costMicroUsd)) : null;

  // Spend against each budget. Shared: the budget's own spent and the ledger sum of its callers.
  const anonIdx = d.callers.map((c, i) => (c.anonymous ? i : -1)).filter((i) => i >= 0);
  const ledgerOf = (idx: number[]) =>
    sum(idx.map((i) => (final.own[i] as CallerReading).ledgerTodayMicro));
  const everyIdx = d.callers.map((_, i) => i);
  const shared = Object.fromEntries(
    (["anon_hourly", "global_hourly"] as const).map((name) => {
      const b = final.shared[name];
      const ledger = ledgerOf(name === "anon_hourly" ? anonIdx : everyIdx);
      const limit = LIMITS_MICRO[name];
      const gap = b ? limit - b.spent : null;
      return [
        name,
        {
          limit_micro_usd: limit,
          spent_micro_usd: b?.spent ?? null,
          ledger_micro_usd: ledger,
          held_after_load: d.afterLoad.shared[name]?.held ?? null,
          held_at_end: b?.held ?? null,
          gap_after_load_micro_usd: d.afterLoad.shared[name]
            ? limit - (d.afterLoad.shared[name]?.spent ?? 0)
            : null,
          gap_micro_usd: gap,
          gap_fraction: gap === null ? null : round(gap / limit, 5),
          gap_bound_micro_usd: gapBound(name, d.shards),
          over_per_shard_bound: gap !== null && gap > gapBound(name, d.shards),
          refused_in_load: refusals[name] ?? 0,
          first_refusal_at: firstRefusal[name] ?? null,
          refused_last_hour_metrics: b?.refused_last_hour ?? null,
        },
      ];
    }),
  );
  const small = (name: "anon_hourly" | "global_hourly") => {
    const b = shared[name];
    if (!b || b.gap_micro_usd === null) return false;
    return b.gap_micro_usd <= Math.max(b.gap_bound_micro_usd, SMALL_GAP * b.limit_micro_usd);
  };
  const globalExhausted = small("global_hourly");
  for (const name of ["anon_hourly", "global_hourly"] as const) {
    const b = shared[name];
    if (!b) continue;
    Object.assign(b, {
      shut_out_by_global: name === "anon_hourly" && globalExhausted && !small(name),
      small: small(name) || (name === "anon_hourly" && globalExhausted),
    });
  }
  const ownOf = (name: "anon_daily" | "user_daily") => {
    const idx = d.callers.map((c, i) => ((name === "anon_daily") === c.anonymous ? i : -1));
    const rows = idx.filter((i) => i >= 0).map((i) => final.own[i] as CallerReading);
    const bound = rows.filter((u) => LIMITS_MICRO[name] - u.budget.spent < gapBound(name, 1));
    return {
      limit_micro_usd: LIMITS_MICRO[name],
      callers: rows.length,
      max_spent_micro_usd: Math.max(...rows.map((u) => u.budget.spent)),
      over_budget: rows.filter((u) => u.budget.spent > u.budget.limit).length,
      settled_not_ledger: rows.filter((u) => u.budget.spent !== u.ledgerTodayMicro).length,
      held_at_end: sum(rows.map((u) => u.budget.held)),
      exhausted_callers: bound.length,
      max_gap_of_exhausted_micro_usd: bound.length
        ? Math.max(...bound.map((u) => LIMITS_MICRO[name] - u.budget.spent))
        : null,
      refused_in_load: refusals[name] ?? 0,
      first_refusal_at: firstRefusal[name] ?? null,
    };
  };
  const own = { anon_daily: ownOf("anon_daily"), user_daily: ownOf("user_daily") };
  const o200k = judgeServed({
    sent,
    callers: d.callers,
    own: final.own,
    shared: final.shared,
    ends: d.ends,
    bills: d.bills,
  });
  const sharedRows = Object.values(shared) as ((typeof shared)[string] & { small?: boolean })[];
  const checks = {
    spend_within_every_budget:
      sharedRows.every((b) => (b.spent_micro_usd ?? Infinity) <= b.limit_micro_usd) &&
      sharedRows.every((b) => b.ledger_micro_usd <= b.limit_micro_usd) &&
      own.anon_daily.over_budget === 0 &&
      own.user_daily.over_budget === 0,
    every_budget_bound_in_the_load: Object.keys(LIMITS_MICRO).every(
      (n) => firstRefusal[n] !== null,
    ),
    // Exhausted and small: the drain ended with every request refused for settled spend, and
    // each shared budget left at most its per-shard bound, or SMALL_GAP of itself (the Durable
    // Object store's shards hold both shared budgets, so a shard whose global part is spent
    // strands its anonymous part), or was shut out by the global budget, which was exhausted.
    exhausted_budgets_leave_little: d.drainExhausted && sharedRows.every((b) => b.small),
    settled_spend_equals_the_ledger:
      sharedRows.every((b) => b.spent_micro_usd === b.ledger_micro_usd) &&
      own.anon_daily.settled_not_ledger === 0 &&
      own.user_daily.settled_not_ledger === 0 &&
      ledgerVsLines === 0 &&
      (recordSpend === null || recordSpend === ledgerOf(everyIdx)),
    nothing_held_after_the_streams:
      sharedRows.every((b) => b.held_after_load === 0 && b.held_at_end === 0) &&
      d.afterLoad.own.every((u) => u.budget.held === 0) &&
      own.anon_daily.held_at_end === 0 &&
      own.user_daily.held_at_end === 0,
    one_settlement_per_stream:
      lost === 0 &&
      doubled === 0 &&
      unexpected === 0 &&
      endsMissing === 0 &&
      endsDoubled === 0 &&
      d.ledgerFailures === 0,
    // The gateway never fails on its own (500). 502 upstream_error (the fake upstream on a
    // loaded machine), 503 limits_unavailable (the store slower than LIMITS_TIMEOUT_MS: failing
    // closed) and transport failures are counted and listed in `failures`: the budgets must hold
    // through them, which the checks above judge.
    no_internal_errors: sent.every((s) => s.r.status !== 500),
    // Judged by the provider's tokenizer: see budget-served.ts.
    ...o200k.checks,
  };
  return {
    store: d.store === "upstash" ? "Upstash" : "Durable Object",
    started_at: d.startedAt,
    shards_per_shared_budget: d.shards,
    load: {
      streams_sent: d.load.length,
      admitted: d.load.filter((s) => s.r.status === 200).length,
      load_ms: d.loadMs,
      aborted_after_headers: d.load.filter((s) => s.r.aborted === "after_headers").length,
      aborted_before_headers: d.load.filter((s) => s.r.aborted === "before_headers").length,
    },
    drain: {
      streams_sent: d.drain.length,
      admitted: d.drain.filter((s) => s.r.status === 200).length,
      exhausted: d.drainExhausted,
    },
    statuses,
    failures: sent
      .filter(
        (s) =>
          s.r.failure !== null ||
          (s.r.status >= 500 &&
            s.r.errorCode !== "budget_exhausted" &&
            s.r.errorCode !== "limits_unavailable"),
      )
      .slice(0, 12)
      .map((s) => ({
        stream_id: s.streamId,
        plan: s.plan,
        anonymous: s.caller.anonymous,
        status: s.r.status,
        error_code: s.r.errorCode,
        failure: s.r.failure,
        tokens: s.r.tokens,
        headers_ms: s.r.headersMs === null ? null : round(s.r.headersMs, 0),
        end_ms: s.r.endMs === null ? null : round(s.r.endMs, 0),
      })),
    shared,
    own,
    ledger: {
      source: records
        ? "every <prefix>:ledger:* record in redis, matched by stream_id to the worker's stream_end lines"
        : "spend.streams and spend.today_usd of GET /api/v1/usage per caller, against the worker's stream_end lines of that caller's streams",
      records: records ? records.length : sum(final.own.map((u) => u.ledgerStreams)),
      stream_end_lines: d.ends.size,
      admitted_without_stream_end: endsMissing,
      lost,
      doubled,
      unexpected,
      ledger_vs_stream_end_cost_micro_usd: ledgerVsLines,
      total_spend_micro_usd: ledgerOf(everyIdx),
      ledger_write_failed_lines: d.ledgerFailures,
    },
    o200k,
    read_back_waited_ms: { after_load: d.afterLoad.waited_ms, at_end: final.waited_ms },
    checks,
  };
}

/** One store's budget run result. */
export type BudgetRunResult = ReturnType<typeof judgeBudgetRun>;
