/** @module The ledger record on the wire: the queue message's schema, and the operator API's JSON and CSV. */
import * as z from "zod";
import type { LedgerRecord } from "./record";

/** Largest text field a record may carry (model ids, user keys, stream ids are far shorter). */
const text = z.string().min(1).max(256);
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/**
 * A queue message or replayed log payload is hostile until checked: the consumer writes only
 * what parses as a whole record; anything else is a poison message.
 */
export const ledgerRecordSchema = z.strictObject({
  recordId: text,
  streamId: text,
  userKey: text,
  model: text,
  provider: text,
  upstreamModel: text.optional(),
  inputTokens: count,
  outputTokens: count,
  costMicroUsd: count,
  finishReason: z.enum([
    "stop",
    "length",
    "cost_cap",
    "max_duration",
    "client_abort",
    "upstream_error",
    "content_filter",
    "stopped",
  ]),
  usageSource: z.enum(["upstream", "estimated"]),
  // 2000-01-01 .. 2200-01-01: a timestamp outside that is a bug, not a stream.
  startedAt: z.number().int().min(946_684_800_000).max(7_258_118_400_000),
  ttftMs: count.nullable(),
  durationMs: count,
  // The budget hold the record settles (src/limits/budget.ts HoldTicket).
  hold: z
    .strictObject({
      id: text,
      at: z.number().int().min(946_684_800_000).max(7_258_118_400_000),
      microUsd: count,
      anonymous: z.boolean(),
      shard: z.number().int().min(0).max(64),
    })
    .optional(),
}) satisfies z.ZodType<LedgerRecord>;

/** A record as the operator API shows it (contract field names, money also as exact µUSD). */
export function publicRecord(r: LedgerRecord) {
  return {
    record_id: r.recordId,
    stream_id: r.streamId,
    user: r.userKey,
    model: r.model,
    provider: r.provider,
    input_tokens: r.inputTokens,
    output_tokens: r.outputTokens,
    cost_usd: r.costMicroUsd / 1e6,
    cost_micro_usd: r.costMicroUsd,
    finish_reason: r.finishReason,
    usage_source: r.usageSource,
    started_at: new Date(r.startedAt).toISOString(),
    ttft_ms: r.ttftMs,
    duration_ms: r.durationMs,
    upstream_model: r.upstreamModel ?? null,
  };
}

type Cell = string | number | null;

/**
 * One RFC 4180 field. Text that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab,
 * CR first) gets a leading `'`: stream ids come from clients.
 */
function field(v: Cell): string {
  if (v === null) return "";
  if (typeof v === "number") return String(v);
  const safe = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

/** RFC 4180 text: a header row, then one row per object, CRLF after every row. */
export function toCsv(header: readonly string[], rows: readonly Record<string, Cell>[]): string {
  const lines = [header.map(field).join(",")];
  for (const row of rows) lines.push(header.map((h) => field(row[h] ?? null)).join(","));
  return `${lines.join("\r\n")}\r\n`;
}
