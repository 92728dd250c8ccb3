/** @module The operator page's API client: the two tokens (kept for this tab only) and typed reads. */

/** The bearer tokens the page needs: METRICS_TOKEN for /api/v1/metrics, ADMIN_TOKEN for the ledger. */
export interface Tokens {
  metrics: string;
  admin: string;
}

const KEY = "magic-ops-tokens";

/** The tokens typed in earlier in this tab (sessionStorage: gone when the tab closes). */
export function loadTokens(): Tokens | null {
  try {
    const t = JSON.parse(sessionStorage.getItem(KEY) ?? "null") as Partial<Tokens> | null;
    return typeof t?.metrics === "string" && typeof t.admin === "string"
      ? { metrics: t.metrics, admin: t.admin }
      : null;
  } catch {
    return null;
  }
}

/** Keeps the tokens for this tab only. */
export function saveTokens(t: Tokens): void {
  sessionStorage.setItem(KEY, JSON.stringify(t));
}

/** Forgets the tokens. */
export function clearTokens(): void {
  sessionStorage.removeItem(KEY);
}

/** A refused or failed read, with a sentence an operator can act on. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const WHY: Record<number, string> = {
  401: "the token was refused",
  404: "this API is off on the server (its token is not set)",
  422: "the server refused the query",
  429: "rate limited",
};

async function getJson<T>(path: string, token: string): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "the server cannot be reached");
  }
  if (!res.ok)
    throw new ApiError(
      res.status,
      `${path.split("?")[0]}: ${WHY[res.status] ?? `HTTP ${res.status}`}`,
    );
  return (await res.json()) as T;
}

/** One latency histogram of a window. */
export interface Histogram {
  count: number;
  buckets: { le: string; count: number }[];
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
}

/** One window of /api/v1/metrics JSON. */
export interface MetricWindow {
  requests: number;
  by_status: Record<string, number>;
  by_error_code: Record<string, number>;
  streams: { started: number; finished: number; by_finish_reason: Record<string, number> };
  tokens: { input: number; output: number };
  cost_usd: number;
  store_latency_ms: Histogram;
  upstream_ttfb_ms: Histogram;
}

/** A shared budget's figures (present once the server reports budgets). */
export interface BudgetFigures {
  limit_usd: number;
  spent_usd: number;
  held_usd: number;
  left_usd: number;
  resets_at: string;
  /** Requests this budget refused, per metrics window (as `windows`). */
  refused: Record<"minute" | "hour" | "day", number>;
}

/** /api/v1/metrics as JSON. */
export interface Metrics {
  store: string;
  generated_at: string;
  windows: { minute: MetricWindow; hour: MetricWindow; day: MetricWindow };
  budgets?: Record<string, BudgetFigures>;
}

/** One row of /api/v1/admin/spend. */
export interface SpendRow {
  day?: string;
  model?: string;
  user?: string;
  streams: number;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
  cost_micro_usd: number;
}

/** Reads the metrics counters. */
export function fetchMetrics(t: Tokens): Promise<Metrics> {
  return getJson<Metrics>("/api/v1/metrics", t.metrics);
}

/** Reads spend per group for UTC days `from`..`to` from the ledger. */
export async function fetchSpend(
  t: Tokens,
  from: string,
  to: string,
  group: "day" | "model" | "user",
  limit = 1000,
): Promise<SpendRow[]> {
  const q = new URLSearchParams({ from, to, group, limit: String(limit) });
  return (await getJson<{ rows: SpendRow[] }>(`/api/v1/admin/spend?${q}`, t.admin)).rows;
}

/** One ledger record as /api/v1/admin/ledger gives it (the columns the page shows). */
export interface LedgerRecord {
  stream_id: string;
  user: string;
  model: string;
  /** The PROVIDERS name of the route's target that answered. */
  provider: string;
  /** That target's own model name; null for records older than routes, and for the demo. */
  upstream_model: string | null;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
  finish_reason: string;
  started_at: string;
}

/** Reads `user`'s latest records from the ledger, newest first. */
export async function fetchRecords(t: Tokens, user: string, limit = 20): Promise<LedgerRecord[]> {
  const q = new URLSearchParams({ user, limit: String(limit) });
  return (await getJson<{ records: LedgerRecord[] }>(`/api/v1/admin/ledger?${q}`, t.admin)).records;
}
