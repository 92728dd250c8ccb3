/** @module The ledger queue's consumer: validates each message, writes the batch to the book, acks per message. */
import { writeLog } from "../observe/log";
import { withRetries } from "../retry";
import type { LedgerBook } from "./ports";
import type { LedgerRecord } from "./record";
import { ledgerRecordSchema } from "./wire";

/** Seconds before a message whose write failed is delivered again. */
export const RETRY_DELAY_SECONDS = 10;
/** Pauses between attempts at the whole batch before falling back to one record at a time. */
const BATCH_PAUSES_MS = [200];

/** What one batch did, for the log line and the tests. */
export interface ConsumeResult {
  written: number;
  duplicate: number;
  poison: number;
  retried: number;
}

/**
 * Writes a batch of ledger messages. A message that is not a whole record (poison) is logged
 * with its body and acked: retrying cannot fix it, and it must not hold up the others. The
 * rest go to the book in one transaction; if that keeps failing, one by one, so one bad row
 * does not block the batch, and each message that still fails is retried (after `max_retries`
 * the queue moves it to the dead-letter queue).
 */
export async function consumeLedger(
  batch: MessageBatch<unknown>,
  book: LedgerBook,
): Promise<ConsumeResult> {
  const result: ConsumeResult = { written: 0, duplicate: 0, poison: 0, retried: 0 };
  const valid: { message: Message<unknown>; record: LedgerRecord }[] = [];
  for (const message of batch.messages) {
    const parsed = ledgerRecordSchema.safeParse(message.body);
    if (parsed.success) {
      valid.push({ message, record: parsed.data });
      continue;
    }
    result.poison++;
    writeLog("error", "ledger_poison_message", {
      queue: batch.queue,
      message_id: message.id,
      attempts: message.attempts,
      cause: parsed.error.issues
        .slice(0, 3)
        .map((i) => `${i.path.join(".") || "body"}: ${i.message}`)
        .join("; "),
      body: safeBody(message.body),
    });
    message.ack();
  }
  if (valid.length === 0) return result;

  try {
    const r = await withRetries(() => book.insert(valid.map((v) => v.record)), BATCH_PAUSES_MS);
    result.written += r.written;
    result.duplicate += r.duplicate;
    for (const v of valid) v.message.ack();
  } catch {
    for (const v of valid) {
      try {
        const r = await book.insert([v.record]);
        result.written += r.written;
        result.duplicate += r.duplicate;
        v.message.ack();
      } catch (e) {
        result.retried++;
        writeLog("warn", "ledger_write_retry", {
          message_id: v.message.id,
          attempts: v.message.attempts,
          record_id: v.record.recordId,
          cause: e instanceof Error ? e.message.slice(0, 200) : String(e).slice(0, 200),
        });
        v.message.retry({ delaySeconds: RETRY_DELAY_SECONDS });
      }
    }
  }
  writeLog("info", "ledger_batch", { queue: batch.queue, ...result });
  return result;
}

/** A poison body for the log: JSON text, cut short (it may be anything). */
function safeBody(body: unknown): string {
  try {
    return (JSON.stringify(body) ?? String(body)).slice(0, 2000);
  } catch {
    return String(body).slice(0, 2000);
  }
}
