/** @module The budget run's section of soak-latest.md. */
import { table } from "../lib/stats";
import type { BudgetRunResult } from "./budget-judge";
import { ADVERSARIAL_SHARE, REASONING_SHARE } from "./budget-mix";
import { BUDGETS } from "./budget-plan";

const pct = (x: number | null) => (x === null ? "–" : `${(x * 100).toFixed(3)} %`);
const at = (x: number | null | undefined) =>
  x === null || x === undefined ? "never" : `${Math.round(x * 100)} %`;

/** Markdown for the budget runs. */
export function budgetMarkdown(
  runs: (BudgetRunResult & { worker_warnings?: Record<string, number> })[],
  streams: number,
  concurrency: number,
) {
  if (runs.length === 0) return [];
  const out: string[] = [
    "## Spend budgets",
    "",
    `Per store: ${streams} streams at concurrency ${concurrency}, half anonymous (24 identities, gpt-4o-mini, caps 50 to 400 µUSD), ` +
      "half signed-in (16 users, gpt-4o, caps 800 to 4,000 µUSD), callers picked with weights 1, 1/2, 1/3, ... so a few are heavy; " +
      "10 to 99 tokens 1 to 5 ms apart; the soak's abort mix. In the load also " +
      `${ADVERSARIAL_SHARE * 100} % adversarial prompts (200 to 1,500 bytes of runs of space-tab, vertical tabs and form feeds, newlines, unicode spaces, emoji or CJK; ` +
      "half with output of mixed whitespace) left by their client after the first chunk, and " +
      `${REASONING_SHARE * 100} % reasoning streams (signed-in: the soak's ANON_MODELS is gpt-4o-mini; o4-mini or gpt-5-mini) whose fake upstream thinks silently 400 to 1,200 ms, ` +
      "three in four left during the silence, so no usage reaches the gateway. Then a drain: rounds of 32 whole streams until two rounds in a row " +
      `are all refused for settled spend. Budgets: ${Object.entries(BUDGETS)
        .map(([k, v]) => `${k}=${v}`)
        .join(", ")}; a fresh STORE_PREFIX per run, all in one clock hour. ` +
      "Spend from the ledger; budgets read back through /api/v1/metrics (shared) and /api/v1/usage (own).",
    "",
    table(
      [
        "store",
        "budget",
        "limit (µUSD)",
        "spent, ledger (µUSD)",
        "unused once exhausted (µUSD, fraction)",
        "bound",
        "first refusal (share of the load)",
        "held after load / at end",
      ],
      runs.flatMap((r) =>
        Object.entries(r.shared).map(([name, b]) => [
          r.store,
          name,
          String(b.limit_micro_usd),
          `${b.spent_micro_usd}, ${b.ledger_micro_usd}`,
          `${b.gap_micro_usd}, ${pct(b.gap_fraction)}${(b as { shut_out_by_global?: boolean }).shut_out_by_global ? " (shut out: global_hourly exhausted first)" : ""}`,
          `≤ ${b.gap_bound_micro_usd}`,
          at(b.first_refusal_at),
          `${b.held_after_load} / ${b.held_at_end}`,
        ]),
      ),
    ),
    "",
    table(
      [
        "store",
        "own budget",
        "callers",
        "max spent / limit (µUSD)",
        "over budget",
        "exhausted (max unused, µUSD)",
        "first refusal",
        "budget ≠ ledger",
        "held at end",
      ],
      runs.flatMap((r) =>
        Object.entries(r.own).map(([name, b]) => [
          r.store,
          name,
          String(b.callers),
          `${b.max_spent_micro_usd} / ${b.limit_micro_usd}`,
          String(b.over_budget),
          `${b.exhausted_callers} (${b.max_gap_of_exhausted_micro_usd ?? "–"})`,
          at(b.first_refusal_at),
          String(b.settled_not_ledger),
          String(b.held_at_end),
        ]),
      ),
    ),
    "",
    table(
      [
        "store",
        "admitted: load / drain",
        "ledger records",
        "lost, doubled",
        "total spend (µUSD)",
        "statuses",
        "passed",
      ],
      runs.map((r) => [
        r.store,
        `${r.load.admitted} of ${r.load.streams_sent} / ${r.drain.admitted} of ${r.drain.streams_sent}`,
        String(r.ledger.records),
        `${r.ledger.lost}, ${r.ledger.doubled}`,
        String(r.ledger.total_spend_micro_usd),
        Object.entries(r.statuses)
          .map(([k, v]) => `${k}: ${v}`)
          .join("; "),
        Object.values(r.checks).every(Boolean)
          ? "yes"
          : `**no** (${Object.entries(r.checks)
              .filter(([, v]) => !v)
              .map(([k]) => k)
              .join(", ")})`,
      ]),
    ),
    "",
    ...o200kMarkdown(runs),
    ...runs.map((r) => {
      const over = Object.entries(r.shared).filter(
        ([, b]) =>
          b.over_per_shard_bound && !(b as { shut_out_by_global?: boolean }).shut_out_by_global,
      );
      const fails = r.failures.map(
        (f) =>
          `${f.stream_id} (${f.plan}, ${f.anonymous ? "anonymous" : "signed-in"}): ${f.status || ""} ${f.error_code ?? f.failure ?? ""} after ${f.tokens} tokens`,
      );
      return (
        `- ${r.store}: ${r.load.aborted_after_headers} left by their client after the headers, ${r.load.aborted_before_headers} before; ` +
        `ledger records ${r.ledger.records} (${r.ledger.source}); stream_end lines ${r.ledger.stream_end_lines}; ledger_write_failed lines ${r.ledger.ledger_write_failed_lines}` +
        (over.length
          ? `; over the per-shard bound (allowed up to 2 % of the budget): ${over.map(([n, b]) => `${n} ${b.gap_micro_usd} > ${b.gap_bound_micro_usd} µUSD`).join(", ")}`
          : "") +
        (fails.length ? `; failures: ${fails.join("; ")}` : "") +
        (r.worker_warnings && Object.keys(r.worker_warnings).length
          ? `; worker warn/error lines: ${Object.entries(r.worker_warnings)
              .map(([k, v]) => `${k} ${v}`)
              .join(", ")}`
          : "")
      );
    }),
    "",
  ];
  return out;
}

/**
 * The o200k judge: per budget, what the gateway recorded against what the fake upstream billed
 * with o200k for the requests it served (own budgets: the sum over callers, and the largest).
 */
function o200kMarkdown(runs: BudgetRunResult[]): string[] {
  const n = (x: number) => x.toLocaleString("en-US");
  return [
    "The provider's count: the fake upstream bills every request it served with o200k (gpt-tokenizer; " +
      "the prompt with OpenAI's chat framing, every chunk written, hidden reasoning, and for a request left " +
      "while thinking its whole max_completion_tokens), at the models' prices, and reports that as its usage. " +
      "Per budget the gateway must have recorded at least that, and that must be within the limit.",
    "",
    table(
      [
        "store",
        "budget",
        "limit (µUSD)",
        "recorded by the gateway",
        "o200k-served",
        "served > recorded",
        "served > limit",
      ],
      runs.flatMap((r) =>
        Object.entries(r.o200k.budgets).map(([name, b]) => {
          const max = "max_recorded_micro_usd" in b;
          return [
            r.store,
            name,
            n(b.limit_micro_usd),
            max
              ? `Σ ${n(b.recorded_micro_usd)} (max ${n(b.max_recorded_micro_usd)})`
              : n(b.recorded_micro_usd),
            max
              ? `Σ ${n(b.served_micro_usd)} (max ${n(b.max_served_micro_usd)})`
              : n(b.served_micro_usd),
            String(b.served_over_recorded),
            String(b.served_over_limit),
          ];
        }),
      ),
    ),
    "",
    table(
      [
        "store",
        "kind",
        "sent",
        "admitted",
        "left after 1st chunk / before it",
        "cut while thinking",
        "completed",
        "o200k-served / recorded (µUSD)",
        "streams recorded below their bill",
      ],
      runs.flatMap((r) =>
        r.o200k.kinds.map((k) => [
          r.store,
          k.kind,
          String(k.sent),
          String(k.admitted),
          `${k.left_after_first_chunk} / ${k.left_before_first_chunk}`,
          String(k.cut_while_thinking),
          String(k.completed),
          `${n(k.served_micro_usd)} / ${n(k.recorded_micro_usd)}`,
          String(k.streams_recorded_below_served),
        ]),
      ),
    ),
    "",
    ...runs.map(
      (r) =>
        `- ${r.store}, furthest below their o200k bill: ${
          r.o200k.streams_furthest_below_their_bill
            .map(
              (w) =>
                `${w.stream_id} (${w.kind}, ${w.plan}, ${w.tokens_seen_by_client} tokens seen, upstream ${w.bill?.clientAborted ? "cut" : "answered in full"}): ${w.bill ? `${w.bill.promptTokens} + ${w.bill.completionTokens} tokens` : "?"}, recorded ${w.recorded_micro_usd} µUSD, ${w.below_by_micro_usd} below`,
            )
            .join("; ") || "none"
        }`,
    ),
    "",
  ];
}
