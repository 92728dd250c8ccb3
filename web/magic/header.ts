/**
 * @module The header's usage lines: who is asking, the anonymous quota left, spend so far, and
 * what is left of the day's budget (from GET /api/v1/usage, kept current by each answer).
 */
import type { Source } from "./api";
import { formatUntil } from "./explain";

/** µUSD from a dollar amount of the API (exact sums from here on). */
const micro = (usd: unknown) => (typeof usd === "number" ? Math.round(usd * 1e6) : 0);

/** Budget amounts from µUSD: "$1.00", "$0.0483", "$0.00003"; no zeros past the cents. */
export function money(u: number): string {
  const usd = Math.max(0, u) / 1e6;
  const digits = usd >= 1 || usd === 0 ? 2 : usd >= 0.01 ? 4 : 6;
  return `$${usd.toFixed(digits).replace(/(\.\d\d\d*?)0+$/, "$1")}`;
}

type Json = Record<string, unknown> | undefined;

/** The header over `quotaLine` and `budgetLine`. */
export function createHeader(quotaLine: HTMLElement, budgetLine: HTMLElement) {
  let limits: { hourly: unknown; total: unknown } = { hourly: null, total: null };
  let spend: { usd: number; streams: number } | null = null;
  /** The caller's own budget in µUSD, or null when the server has none for this caller. */
  let budget: { limit: number; left: number; reset: number; window: string } | null = null;
  let anonymous = true;

  function renderQuota(hourlyLeft?: unknown, totalLeft?: unknown): void {
    let text: string;
    if (!anonymous) {
      text = "Signed in · no anonymous quota applies";
    } else if (typeof hourlyLeft === "number") {
      const of = (n: unknown, limit: unknown) =>
        typeof limit === "number" ? `${n} of ${limit}` : `${n}`;
      text = `Anonymous · ${of(hourlyLeft, limits.hourly)} streams left this hour`;
      if (typeof totalLeft === "number") text += ` · ${of(totalLeft, limits.total)} in total`;
    } else {
      text = "Anonymous session";
    }
    // With a budget the budget line says what was spent; without one, the total does.
    if (spend && spend.streams > 0 && !budget)
      text += ` · spent $${spend.usd.toFixed(4)} on ${spend.streams} ${spend.streams === 1 ? "answer" : "answers"}`;
    quotaLine.textContent = text;
  }

  function renderBudget(): void {
    budgetLine.hidden = budget === null;
    if (!budget) return;
    budgetLine.textContent = `Budget: ${money(budget.left)} of ${money(budget.limit)} left ${budget.window} · renews ${formatUntil(budget.reset)}`;
    budgetLine.classList.toggle("spent", budget.left <= 0);
    budgetLine.dataset.leftMicro = String(budget.left);
  }

  return {
    /** Whether the caller is anonymous (true until the server says otherwise). */
    get anonymous() {
      return anonymous;
    },
    /** Shows an answer of GET /api/v1/usage; every field is checked, none trusted. */
    usage(u: Record<string, unknown>): void {
      anonymous = u.anonymous === true;
      const s = u.spend as Json;
      spend =
        typeof s?.total_usd === "number" && typeof s.streams === "number"
          ? { usd: s.total_usd, streams: s.streams }
          : null;
      const b = u.budget as Json | null;
      budget =
        b && typeof b.limit_usd === "number" && typeof b.reset === "number"
          ? {
              limit: micro(b.limit_usd),
              left: micro(b.left_usd),
              reset: b.reset,
              window: b.window === "hour" ? "this hour" : "today",
            }
          : null;
      const q = u.quota as Record<string, Json> | null | undefined;
      limits = { hourly: q?.hourly?.limit ?? null, total: q?.total?.limit ?? null };
      renderQuota(q?.hourly?.remaining, q?.total?.remaining);
      renderBudget();
    },
    /** The usage read failed: the page still works, as an anonymous caller. */
    unavailable(): void {
      anonymous = true;
      quotaLine.textContent = "Usage unavailable right now";
    },
    /** A finished answer (`done`): its cost comes off the budget; its quota is shown. */
    answered(d: Record<string, unknown>, source: Source): void {
      const cost = micro(d.cost_usd);
      if (spend) spend = { usd: spend.usd + cost / 1e6, streams: spend.streams + 1 };
      if (budget) budget.left -= cost;
      renderBudget();
      const q = d.quota as Json;
      if (q) renderQuota(q.hourly_remaining, q.total_remaining);
      else if (source !== "anonymous") {
        anonymous = false;
        renderQuota();
      }
    },
  };
}
