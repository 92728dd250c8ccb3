/** @module The ledger's ports: a sink the stream path sends records to, and the book they are kept in. */
import type { LedgerRecord } from "./record";

/**
 * Where the stream path hands its record: a Queue producer, or D1 itself on a worker without
 * Queues. One send, after the response.
 */
export interface LedgerSink {
  readonly kind: "queue" | "d1";
  send(record: LedgerRecord): Promise<void>;
}

/** How many records an insert wrote, and how many it found already there. */
export interface InsertResult {
  written: number;
  duplicate: number;
}

/** Spend per group, summed from the records of a range of UTC days. */
export type SpendGroup = "day" | "model" | "user";

/** One row of a spend answer; `key` is the day, the model or the user. */
export interface SpendRow {
  key: string;
  streams: number;
  inputTokens: number;
  outputTokens: number;
  costMicroUsd: number;
}

/** A page of one user's records, newest first. */
export interface RecordPage {
  records: LedgerRecord[];
  /** Where the next page starts, or null on the last page. */
  next: { startedAt: number; recordId: string } | null;
}

/** The ledger's book (D1): written by the queue consumer, read by the operator API. */
export interface LedgerBook {
  readonly kind: "d1";
  /** Writes records; a record id already in the book changes nothing (idempotent). */
  insert(records: readonly LedgerRecord[]): Promise<InsertResult>;
  /** Sums the records of UTC days `from`..`to` (inclusive) per group, at most `limit` rows. */
  spend(from: string, to: string, group: SpendGroup, limit: number): Promise<SpendRow[]>;
  /** One user's records older than `before` (or the newest), at most `limit`. */
  records(
    user: string,
    limit: number,
    before: { startedAt: number; recordId: string } | null,
  ): Promise<RecordPage>;
}
