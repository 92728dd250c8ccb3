/** @module writeLedger: a record's retries against a flaky store. */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { LedgerRecord } from "../../src/ledger/record";
import { writeLedger } from "../../src/ledger/write";
import type { LimitStore } from "../../src/limits/store";
import { createLogger } from "../../src/observe/log";

function ledgerRecord(): LedgerRecord {
  return {
    recordId: crypto.randomUUID(),
    streamId: "s",
    userKey: `supabase:${crypto.randomUUID()}`,
    model: "gpt-4o-mini",
    provider: "openai",
    inputTokens: 10,
    outputTokens: 5,
    costMicroUsd: 5,
    finishReason: "stop",
    usageSource: "upstream",
    startedAt: Date.now(),
    ttftMs: 3,
    durationMs: 9,
  };
}

/** A store whose writeLedger fails `failures` times, then answers "written". */
function flakyStore(failures: number): LimitStore & { attempts: () => number } {
  let attempts = 0;
  const unused = () => Promise.reject(new Error("not used here"));
  return {
    kind: "durable_object",
    admit: unused,
    cancelAdmission: unused,
    refundQuota: unused,
    hitSessionMint: unused,
    hitUsageRead: unused,
    usage: unused,
    recordMetrics: unused,
    readMetrics: unused,
    sharedBudgets: unused,
    async writeLedger() {
      attempts++;
      if (attempts <= failures) throw new Error(`store down (${attempts})`);
      return "written";
    },
    attempts: () => attempts,
  } as LimitStore & { attempts: () => number };
}

describe("writeLedger", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("retries a failing store and succeeds without logging an error", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const store = flakyStore(2);
    const result = await writeLedger(store, ledgerRecord(), createLogger("req-1"), [1, 1]);
    expect(result).toBe("written");
    expect(store.attempts()).toBe(3);
    expect(errors).not.toHaveBeenCalled();
  });

  it("logs ledger_write_failed with the record to replay when every attempt fails", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const store = flakyStore(99);
    const record = ledgerRecord();
    const result = await writeLedger(store, record, createLogger("req-2"), [1, 1]);
    expect(result).toBe("failed");
    expect(store.attempts()).toBe(3);
    expect(errors).toHaveBeenCalledTimes(1);
    const line = JSON.parse(String(errors.mock.calls[0]?.[0])) as Record<string, unknown>;
    expect(line).toMatchObject({
      level: "error",
      event: "ledger_write_failed",
      attempts: 3,
      store: "durable_object",
      request_id: "req-2",
    });
    expect(JSON.parse(String(line.replay))).toEqual(record);
  });
});
