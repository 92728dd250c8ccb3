/** @module The ledger sink on a Cloudflare Queue: one send per stream, consumed by this worker. */
import type { LedgerSink } from "./ports";
import type { LedgerRecord } from "./record";

/** The Queue adapter of the ledger sink. */
export class QueueLedgerSink implements LedgerSink {
  readonly kind = "queue";
  constructor(private readonly queue: Queue<LedgerRecord>) {}

  send(record: LedgerRecord): Promise<void> {
    return this.queue.send(record, { contentType: "json" }).then(() => undefined);
  }
}
