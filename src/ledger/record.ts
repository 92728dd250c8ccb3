/** @module One stream's cost record, as the ledger stores it. */
import type { HoldTicket } from "../limits/budget";

/** Why a stream ended. */
export type FinishReason =
  | "stop"
  | "length"
  | "cost_cap"
  | "max_duration"
  | "client_abort"
  | "upstream_error"
  | "content_filter"
  /** Stopped by its owner (`DELETE /api/v1/streams/{id}`). */
  | "stopped";

/** Ledger records are kept this long. */
export const LEDGER_RETENTION_SECONDS = 30 * 86_400;

/**
 * One stream's record. `recordId` is made by the server for each stream it runs and is the
 * idempotency key: `stream_id` comes from the client, so a client reusing one must not be able
 * to make a second stream's cost disappear as a "duplicate".
 */
export interface LedgerRecord {
  recordId: string;
  streamId: string;
  userKey: string;
  model: string;
  provider: string;
  /** The answering target's model name at its provider (absent in records before routes). */
  upstreamModel?: string;
  inputTokens: number;
  outputTokens: number;
  /** Cost in micro-dollars (USD × 1e6), integral so sums never drift. */
  costMicroUsd: number;
  finishReason: FinishReason;
  usageSource: "upstream" | "estimated";
  startedAt: number;
  ttftMs: number | null;
  durationMs: number;
  /** The budget hold this record settles (none for a stream admitted without budgets). */
  hold?: HoldTicket;
}

/** The UTC day (YYYY-MM-DD) a timestamp belongs to: per-day spend is keyed by it. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** What the ledger needs to know about how a stream ended (see StreamSummary). */
export interface StreamOutcome {
  finishReason: FinishReason;
  inputTokens: number;
  outputTokens: number;
  costMicroUsd: number;
  usageSource: "upstream" | "estimated";
  ttftMs: number | null;
  durationMs: number;
}

/** The record of one stream; the record id is new for every stream the server runs. */
export function ledgerRecord(
  outcome: StreamOutcome,
  s: {
    streamId: string;
    userKey: string;
    model: string;
    provider: string;
    upstreamModel?: string;
    startedAt: number;
    hold?: HoldTicket;
  },
): LedgerRecord {
  return {
    ...(s.hold ? { hold: s.hold } : {}),
    recordId: crypto.randomUUID(),
    streamId: s.streamId,
    userKey: s.userKey,
    model: s.model,
    provider: s.provider,
    ...(s.upstreamModel ? { upstreamModel: s.upstreamModel } : {}),
    inputTokens: outcome.inputTokens,
    outputTokens: outcome.outputTokens,
    costMicroUsd: outcome.costMicroUsd,
    finishReason: outcome.finishReason,
    usageSource: outcome.usageSource,
    startedAt: s.startedAt,
    ttftMs: outcome.ttftMs,
    durationMs: outcome.durationMs,
  };
}

/**
 * The outcome of a stream that reached no model (it failed or its client left before the
 * upstream was called or answered): nothing spent. Its record still settles the stream's hold.
 */
export function unspent(finishReason: FinishReason, startedAt: number): StreamOutcome {
  return {
    finishReason,
    inputTokens: 0,
    outputTokens: 0,
    costMicroUsd: 0,
    usageSource: "estimated",
    ttftMs: null,
    durationMs: Date.now() - startedAt,
  };
}
