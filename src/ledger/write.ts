/** @module Writes a stream's ledger record after the response, retrying, and logging what a replay needs. */
import type { LimitStore } from "../limits/store";
import { describeError, type Logger } from "../observe/log";
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
  for (let attempt = 0; ; attempt++) {
    try {
      return await store.writeLedger(record);
    } catch (e) {
      const delay = delays[attempt];
      if (delay === undefined) {
        log.error("ledger_write_failed", {
          attempts: attempt + 1,
          store: store.kind,
          cause: describeError(e),
          replay: JSON.stringify(record),
        });
        return "failed";
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
