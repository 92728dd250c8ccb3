/** @module The ledger book in D1: batched idempotent inserts, and the indexed reads of the operator API. */
import type { InsertResult, LedgerBook, RecordPage, SpendGroup, SpendRow } from "./ports";
import { type FinishReason, type LedgerRecord, utcDay } from "./record";

/**
 * The whole batch is one statement over one JSON parameter: D1 binds at most 100 parameters
 * per statement, and a batch of many statements counts as many queries against the
 * invocation's limit. `WHERE true` lets SQLite parse the upsert after a SELECT.
 */
const COLUMNS = [
  "record_id",
  "stream_id",
  "user",
  "model",
  "provider",
  "input_tokens",
  "output_tokens",
  "cost_micro_usd",
  "finish_reason",
  "usage_source",
  "started_at",
  "day",
  "ttft_ms",
  "duration_ms",
  "upstream_model",
];
const INSERT = `INSERT INTO ledger (${COLUMNS.join(", ")})
  SELECT ${COLUMNS.map((_, i) => `json_extract(value, '$[${i}]')`).join(", ")}
  FROM json_each(?1) WHERE true
  ON CONFLICT (record_id) DO NOTHING`;

/** Column and order per group: a whitelist, never text from the request. */
const GROUPS: Record<SpendGroup, { column: string; order: string }> = {
  day: { column: "day", order: "day" },
  model: { column: "model", order: "model" },
  user: { column: "user", order: "cost_micro_usd DESC, user" },
};

/** The spend query per group (exported for the test that checks its query plan). */
export const SPEND_SQL = Object.fromEntries(
  Object.entries(GROUPS).map(([group, { column, order }]) => [
    group,
    `SELECT ${column} AS key, COUNT(*) AS streams, SUM(input_tokens) AS input_tokens,
       SUM(output_tokens) AS output_tokens, SUM(cost_micro_usd) AS cost_micro_usd
     FROM ledger WHERE day BETWEEN ?1 AND ?2 GROUP BY ${column} ORDER BY ${order} LIMIT ?3`,
  ]),
) as Record<SpendGroup, string>;

/** One user's first page, and the page after a cursor (row values walk the index from it). */
export const PAGE_SQL = {
  first: "SELECT * FROM ledger WHERE user = ?1 ORDER BY started_at DESC, record_id DESC LIMIT ?2",
  next: `SELECT * FROM ledger WHERE user = ?1 AND (started_at, record_id) < (?2, ?3)
    ORDER BY started_at DESC, record_id DESC LIMIT ?4`,
};

interface Row {
  record_id: string;
  stream_id: string;
  user: string;
  model: string;
  provider: string;
  input_tokens: number;
  output_tokens: number;
  cost_micro_usd: number;
  finish_reason: string;
  usage_source: string;
  started_at: number;
  ttft_ms: number | null;
  duration_ms: number;
  upstream_model: string | null;
}

function fromRow(r: Row): LedgerRecord {
  return {
    recordId: r.record_id,
    streamId: r.stream_id,
    userKey: r.user,
    model: r.model,
    provider: r.provider,
    inputTokens: r.input_tokens,
    outputTokens: r.output_tokens,
    costMicroUsd: r.cost_micro_usd,
    finishReason: r.finish_reason as FinishReason,
    usageSource: r.usage_source as LedgerRecord["usageSource"],
    startedAt: r.started_at,
    ttftMs: r.ttft_ms,
    durationMs: r.duration_ms,
    ...(r.upstream_model ? { upstreamModel: r.upstream_model } : {}),
  };
}

/** The D1 adapter of the ledger book. */
export class D1LedgerBook implements LedgerBook {
  readonly kind = "d1";
  constructor(private readonly db: D1Database) {}

  /** One statement, so all of the batch is written or none of it (and it throws). */
  async insert(records: readonly LedgerRecord[]): Promise<InsertResult> {
    if (records.length === 0) return { written: 0, duplicate: 0 };
    const rows = records.map((r) => [
      r.recordId,
      r.streamId,
      r.userKey,
      r.model,
      r.provider,
      r.inputTokens,
      r.outputTokens,
      r.costMicroUsd,
      r.finishReason,
      r.usageSource,
      r.startedAt,
      utcDay(r.startedAt),
      r.ttftMs,
      r.durationMs,
      r.upstreamModel ?? null,
    ]);
    const res = await this.db.prepare(INSERT).bind(JSON.stringify(rows)).run();
    const written = res.meta.changes ?? 0;
    return { written, duplicate: records.length - written };
  }

  async spend(from: string, to: string, group: SpendGroup, limit: number): Promise<SpendRow[]> {
    const { results } = await this.db.prepare(SPEND_SQL[group]).bind(from, to, limit).all<{
      key: string;
      streams: number;
      input_tokens: number;
      output_tokens: number;
      cost_micro_usd: number;
    }>();
    return results.map((r) => ({
      key: r.key,
      streams: r.streams,
      inputTokens: r.input_tokens,
      outputTokens: r.output_tokens,
      costMicroUsd: r.cost_micro_usd,
    }));
  }

  async records(
    user: string,
    limit: number,
    before: { startedAt: number; recordId: string } | null,
  ): Promise<RecordPage> {
    // One row more than asked says whether there is a next page. The row-value comparison
    // walks the (user, started_at DESC, record_id DESC) index from the cursor on.
    const query = before
      ? this.db.prepare(PAGE_SQL.next).bind(user, before.startedAt, before.recordId, limit + 1)
      : this.db.prepare(PAGE_SQL.first).bind(user, limit + 1);
    const { results } = await query.all<Row>();
    const records = results.slice(0, limit).map(fromRow);
    const last = records.at(-1);
    return {
      records,
      next:
        results.length > limit && last
          ? { startedAt: last.startedAt, recordId: last.recordId }
          : null,
    };
  }
}
