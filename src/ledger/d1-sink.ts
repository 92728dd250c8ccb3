/**
 * @module The ledger sink straight into D1, for a worker without Queues (the Workers Free plan):
 * one idempotent insert per stream, after the response, instead of a queue send.
 */
import type { LedgerBook, LedgerSink } from "./ports";
import type { LedgerRecord } from "./record";

/** The D1 adapter of the ledger sink: the same insert the queue consumer and a replay use. */
export class D1LedgerSink implements LedgerSink {
  readonly kind = "d1";
  constructor(private readonly book: LedgerBook) {}

  async send(record: LedgerRecord): Promise<void> {
    await this.book.insert([record]);
  }
}
