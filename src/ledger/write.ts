/** @module Writes a stream's ledger record after the response, retrying, and logging what a replay needs. */
import { env } from "cloudflare:workers";
import type { LimitStore } from "../limits/store";
import { describeError, type Logger } from "../observe/log";
import { withRetries } from "../retry";
import { D1LedgerBook } from "./d1-book";
import { D1LedgerSink } from "./d1-sink";
import type { LedgerSink } from "./ports";
import { QueueLedgerSink } from "./queue-sink";
import type { LedgerRecord } from "./record";

/** Pauses before the 2nd and 3rd attempts. */
export const LEDGER_RETRY_DELAYS_MS = [100, 500];

/** The log event whose `replay` field `npm run ledger:replay` writes to the ledger book. */
export const SEND_FAILED_EVENT = "ledger_send_failed";

const sinks = new WeakMap<object, LedgerSink>();

/** The bindings a sink is made from; the queue is absent on a worker deployed without Queues. */
export interface LedgerBindings {
  LEDGER_QUEUE?: Queue<LedgerRecord> | undefined;
  LEDGER_DB: D1Database;
}

/**
 * The worker's own queue, or, when `wrangler.toml` binds none (the Workers Free plan has no
 * Queues), D1 directly. Built once per binding.
 */
export function ledgerSinkFor(bindings: LedgerBindings): LedgerSink {
  const binding = bindings.LEDGER_QUEUE ?? bindings.LEDGER_DB;
  let sink = sinks.get(binding);
  if (!sink) {
    sink = bindings.LEDGER_QUEUE
      ? new QueueLedgerSink(bindings.LEDGER_QUEUE)
      : new D1LedgerSink(new D1LedgerBook(bindings.LEDGER_DB));
    sinks.set(binding, sink);
  }
  return sink;
}

/**
 * Sends `record` to the ledger queue, retrying; when every attempt fails, logs it whole under
 * SEND_FAILED_EVENT, so a replay can write it later (the book ignores a record id it has).
 */
export async function sendLedger(
  record: LedgerRecord,
  log: Logger,
  delays = LEDGER_RETRY_DELAYS_MS,
  sink?: LedgerSink,
): Promise<"sent" | "failed"> {
  try {
    // The module env (`cloudflare:workers`): every surface that writes a ledger record sends it
    // too, without passing bindings down.
    const target = sink ?? ledgerSinkFor(env as unknown as LedgerBindings);
    await withRetries(() => target.send(record), delays);
    return "sent";
  } catch (e) {
    log.error(SEND_FAILED_EVENT, {
      attempts: delays.length + 1,
      sink: (sink ?? ledgerSinkFor(env as unknown as LedgerBindings)).kind,
      cause: describeError(e),
      replay: JSON.stringify(record),
    });
    return "failed";
  }
}

/**
 * Writes `record`, retrying on failure. The write is idempotent by `recordId`, so a retry
 * after a lost answer never counts twice. If every attempt fails, the record is logged in full.
 * Alongside, the record is sent to the ledger queue (the durable ledger in D1).
 */
export async function writeLedger(
  store: LimitStore,
  record: LedgerRecord,
  log: Logger,
  delays = LEDGER_RETRY_DELAYS_MS,
  sink?: LedgerSink,
): Promise<"written" | "duplicate" | "failed"> {
  const sent = sendLedger(record, log, delays, sink);
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
  } finally {
    await sent;
  }
}
