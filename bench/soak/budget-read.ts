/**
 * @module What the budget soak reads back after a phase: the shared budgets from
 * /api/v1/metrics, each caller's own budget and ledger spend from /api/v1/usage, and (Upstash
 * store) every ledger record straight from redis.
 */
import { connectResp, type RespConnection } from "../../test/support/resp";
import { getJson } from "../lib/client";
import type { Stack } from "../lib/stack";
import type { Caller } from "./budget-plan";

/** The metrics token the soak gives the worker. */
export const METRICS_TOKEN = "soak-metrics-token-0123456789-abcdefghij";

const micro = (usd: number | undefined) => Math.round((usd ?? 0) * 1e6);

/** One budget's window as read back, µUSD. */
export interface BudgetReading {
  limit: number;
  spent: number;
  held: number;
}

/** The shared budgets (µUSD) and their refusals in the last hour, from /api/v1/metrics. */
export async function readSharedBudgets(url: string) {
  const { status, body } = await getJson<{
    budgets?: Record<
      string,
      { limit_usd: number; spent_usd: number; held_usd: number; refused: Record<string, number> }
    >;
  }>(`${url}/api/v1/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  if (status !== 200 || !body.budgets) throw new Error(`metrics answered ${status}`);
  const out: Record<string, BudgetReading & { refused_last_hour: number }> = {};
  for (const [name, b] of Object.entries(body.budgets)) {
    out[name] = {
      limit: micro(b.limit_usd),
      spent: micro(b.spent_usd),
      held: micro(b.held_usd),
      refused_last_hour: b.refused.hour ?? 0,
    };
  }
  return out;
}

/** One caller's own budget and ledger spend (today), from /api/v1/usage. */
export interface CallerReading {
  budget: BudgetReading & { name: string };
  ledgerTodayMicro: number;
  ledgerStreams: number;
}

/** Reads /api/v1/usage for every caller. */
export async function readCallers(url: string, callers: Caller[]): Promise<CallerReading[]> {
  const out: CallerReading[] = [];
  for (const c of callers) {
    const { status, body } = await getJson<{
      spend?: { today_usd: number; streams: number };
      budget?: { name: string; limit_usd: number; spent_usd: number; held_usd: number } | null;
    }>(`${url}/api/v1/usage`, {
      headers: { authorization: `Bearer ${c.token}`, "cf-connecting-ip": "198.19.255.9" },
    });
    if (status !== 200 || !body.spend || !body.budget) throw new Error(`usage answered ${status}`);
    out.push({
      budget: {
        name: body.budget.name,
        limit: micro(body.budget.limit_usd),
        spent: micro(body.budget.spent_usd),
        held: micro(body.budget.held_usd),
      },
      ledgerTodayMicro: micro(body.spend.today_usd),
      ledgerStreams: body.spend.streams,
    });
  }
  return out;
}

/** One ledger record as the Upstash store keeps it (the fields the soak checks). */
export interface StoredRecord {
  streamId: string;
  userKey: string;
  costMicroUsd: number;
  finishReason: string;
  hold?: { id: string; microUsd: number };
}

/** Every `<prefix>:ledger:*` record, read from redis. */
export async function readUpstashRecords(stack: Stack, prefix: string): Promise<StoredRecord[]> {
  const conn = await connectResp({ port: stack.redis.port });
  try {
    return await readLedgerRecords(conn, prefix);
  } finally {
    await conn.close();
  }
}

/**
 * Every `<prefix>:ledger:*` record on an open redis connection (SCAN, then MGET in batches of
 * 500). Shared with the main soak (bench/soak.ts), which reads its counters on the same connection.
 */
export async function readLedgerRecords(
  conn: RespConnection,
  prefix: string,
): Promise<StoredRecord[]> {
  const keys: string[] = [];
  let cursor = "0";
  for (let guard = 0; guard < 10_000; guard++) {
    const reply = (await conn.send([
      "SCAN",
      cursor,
      "MATCH",
      `${prefix}:ledger:*`,
      "COUNT",
      "1000",
    ])) as [Buffer, Buffer[]];
    cursor = reply[0].toString();
    keys.push(...reply[1].map((k) => k.toString()));
    if (cursor === "0") break;
  }
  const records: StoredRecord[] = [];
  for (let i = 0; i < keys.length; i += 500) {
    const values = (await conn.send(["MGET", ...keys.slice(i, i + 500)])) as (Buffer | null)[];
    for (const v of values) if (v) records.push(JSON.parse(v.toString()) as StoredRecord);
  }
  return records;
}
