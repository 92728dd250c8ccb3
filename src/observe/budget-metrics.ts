/**
 * @module The shared budgets for operators: spent, held and refusals, as JSON and as Prometheus
 * text. Callers never see these (they reveal the service's traffic); /api/v1/metrics does.
 */
import type { BudgetView } from "../limits/store";
import type { Counters } from "./metrics";

/** µUSD as a plain decimal USD string for JSON-minded readers (never `1.5e-05`). */
const usd = (micro: number) => Number((micro / 1e6).toFixed(6));

/** The JSON view: each shared budget's current window, and refusals per metrics window. */
export function budgetSummary(views: BudgetView[], windows: Record<string, Counters>) {
  const out: Record<string, unknown> = {};
  for (const v of views) {
    const refused: Record<string, number> = {};
    for (const [w, c] of Object.entries(windows)) refused[w] = c[`budget_refused_${v.name}`] ?? 0;
    out[v.name] = {
      limit_usd: usd(v.limit),
      spent_usd: usd(v.spent),
      held_usd: usd(v.held),
      expired_usd: usd(v.expired),
      left_usd: usd(Math.max(0, v.limit - v.spent - v.held)),
      resets_at: new Date(v.endsAt).toISOString(),
      refused,
    };
  }
  return out;
}

/** Prometheus families for the budgets, each family's lines together. */
export function budgetPrometheus(
  views: BudgetView[],
  windows: Record<string, Counters>,
  names: string[],
): string {
  const lines: string[] = [];
  const family = (name: string, help: string, rows: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const [labels, value] of rows) lines.push(`${name}{${labels}} ${value}`);
  };
  const each = (f: (v: BudgetView) => number): [string, number][] =>
    views.map((v) => [`budget="${v.name}"`, f(v) / 1e6]);
  family(
    "magicbox_budget_limit_usd",
    "Shared budget ceiling of the current window, USD",
    each((v) => v.limit),
  );
  family(
    "magicbox_budget_spent_usd",
    "Settled spend in the shared budget's current window, USD",
    each((v) => v.spent),
  );
  family(
    "magicbox_budget_held_usd",
    "Live holds in the shared budget's current window, USD",
    each((v) => v.held),
  );
  family(
    "magicbox_budget_expired_usd",
    "Holds that expired unsettled and count in spend at their full amount until their record arrives, USD",
    each((v) => v.expired),
  );
  const refusals: [string, number][] = [];
  for (const [w, c] of Object.entries(windows))
    for (const name of names)
      refusals.push([`window="${w}",budget="${name}"`, c[`budget_refused_${name}`] ?? 0]);
  family("magicbox_budget_refusals", "Requests a budget refused in the window", refusals);
  return `${lines.join("\n")}\n`;
}
