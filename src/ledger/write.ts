/** @module Writes a stream's ledger record after the response, retrying, and logging what a replay needs. */
import type { LimitStore } from "../limits/store";
import { describeError, type Logger } from "../observe/log";
import { withRetries } from "../retry";
import type { LedgerRecord } from "./record";

/** Pauses before the 2nd and 3rd attempts. */
export const LEDGER_RETRY_DELAYS_MS = [100, 500];

/**
 * Writes `record`, retrying on failure. The write is idempotent by `recordId`, so a retry
 * after a lost answer never counts twice. If every attempt fails, the record is logged in full.
 */
export async function writeLedger(
  store: LimitStore,
  record: LedgerRecord,
  log: Logger,
  delays = LEDGER_RETRY_DELAYS_MS,
): Promise<"written" | "duplicate" | "failed"> {
  try {
    return await withRetries(() => store.writeLedger(record), delays);
  } catch (e) {
    log.error("ledger_write_failed", {
      attempts: delays.length + 1,
      store: store.kind,
      cause: describeError(e),
      replay: JSON.stringify(record),
    });
    return "failed";
  }
}
