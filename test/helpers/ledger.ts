/** @module Ledger helpers for the tests: records as the stream path makes them, D1 reads, queue deliveries. */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { Bindings } from "../../src/env";
import worker from "../../src/index";
import type { LedgerRecord } from "../../src/ledger/record";

const bindings = env as unknown as Bindings;

/** A ledger row as D1 holds it. */
export interface Row {
  record_id: string;
  stream_id: string;
  user: string;
  model: string;
  input_tokens: number;
  output_tokens: number;
  cost_micro_usd: number;
  finish_reason: string;
  started_at: number;
  day: string;
}

/** The rows of one user, in no particular order. */
export async function rowsOf(user: string): Promise<Row[]> {
  const { results } = await bindings.LEDGER_DB.prepare("SELECT * FROM ledger WHERE user = ?1")
    .bind(user)
    .all<Row>();
  return results;
}

/** Waits (bounded) until `user` has `n` rows in D1: the queue delivers after the response. */
export async function waitForRows(user: string, n: number): Promise<Row[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const rows = await rowsOf(user);
    if (rows.length >= n || Date.now() > deadline) return rows;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A record as the stream path makes it. */
export function record(overrides: Partial<LedgerRecord> = {}): LedgerRecord {
  return {
    recordId: crypto.randomUUID(),
    streamId: crypto.randomUUID(),
    userKey: `supabase:${crypto.randomUUID()}`,
    model: "gpt-4o-mini",
    provider: "openai",
    inputTokens: 12,
    outputTokens: 34,
    costMicroUsd: 22,
    finishReason: "stop",
    usageSource: "upstream",
    startedAt: Date.now(),
    ttftMs: 5,
    durationMs: 40,
    ...overrides,
  };
}

/** Runs the worker's own queue handler on `bodies`, as the runtime would deliver them. */
export async function deliver(bodies: unknown[]) {
  const batch = createMessageBatch(
    "magic-ledger",
    bodies.map((body, i) => ({
      id: `m${i}-${crypto.randomUUID()}`,
      timestamp: new Date(),
      attempts: 1,
      body,
    })),
  );
  const ctx = createExecutionContext();
  await worker.queue(batch, bindings);
  return getQueueResult(batch, ctx);
}
