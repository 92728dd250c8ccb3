/** @module What the tests of GET|POST /api/v1/stream share: starting a stream, the fake upstream's records, the contract's framing and exact prices. */
import { decodeJwt } from "jose";
import { expect, inject } from "vitest";
import type { Bindings } from "../../src/env";
import type { DoneData } from "../../src/stream/frames";
import type { UpstreamRecord } from "../support/upstream-record";
import { call, testEnv } from "./app";
import { freshIp, upstreamRecord as recordOf } from "./gate";
import type { SseEvent } from "./sse";
import { bearer, supabaseClaims, supabaseHs256 } from "./tokens";

/** The fake's own address (without `/v1`), for its `/__test/requests/<id>` records. */
export const UPSTREAM_BASE = inject("upstreamUrl").replace(/\/v1$/, "");

export interface ChunkData {
  content: string;
  output_tokens: number;
  cost_usd: number;
}

export interface ErrorData {
  error_code: string;
  detail: string;
  retry_after: number | null;
}

export interface StreamOptions {
  token: string;
  message: string;
  model?: string;
  stream_id?: string;
  cost_cap_usd?: number;
  method?: "GET" | "POST";
  bindings?: Bindings;
  ip?: string;
  signal?: AbortSignal;
  accept?: string;
}

/** Calls the stream endpoint by GET (query) or POST (JSON). */
export function startStream(o: StreamOptions) {
  const fields: Record<string, string | number> = { message: o.message };
  if (o.model !== undefined) fields.model = o.model;
  if (o.stream_id !== undefined) fields.stream_id = o.stream_id;
  if (o.cost_cap_usd !== undefined) fields.cost_cap_usd = o.cost_cap_usd;
  const headers: Record<string, string> = { ...bearer(o.token) };
  if (o.accept) headers.Accept = o.accept;
  const init: RequestInit & { ip?: string } = { headers, ip: o.ip ?? freshIp() };
  if (o.signal) init.signal = o.signal;
  if (o.method === "POST") {
    headers["Content-Type"] = "application/json";
    return call(
      "/api/v1/stream",
      { ...init, method: "POST", body: JSON.stringify(fields) },
      o.bindings ?? testEnv(),
    );
  }
  const query = new URLSearchParams(
    Object.entries(fields).map(([k, v]) => [k, String(v)] as [string, string]),
  );
  return call(`/api/v1/stream?${query}`, init, o.bindings ?? testEnv());
}

/** What the fake upstream saw for directive `id`, which it must have seen. */
export async function expectUpstreamRecord(id: string): Promise<UpstreamRecord> {
  const record = await recordOf(id);
  expect(record).not.toBeNull();
  return record as UpstreamRecord;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls the fake's record until `until` holds; at most ~2 s (40 × 50 ms), then returns the last one. */
export async function pollUpstream(
  id: string,
  until: (r: UpstreamRecord) => boolean,
): Promise<UpstreamRecord> {
  let record = await expectUpstreamRecord(id);
  for (let i = 0; i < 40 && !until(record); i++) {
    await sleep(50);
    record = await expectUpstreamRecord(id);
  }
  return record;
}

/** The limits key of a token's principal (`anonymous:<sub>` or `supabase:<sub>`). */
export function principalKey(token: string): string {
  const { sub, iss } = decodeJwt(token);
  const source =
    typeof iss === "string" && iss.startsWith("urn:magic-box:") ? "anonymous" : "supabase";
  return `${source}:${sub}`;
}

/** A fresh Supabase user's token and its principal key. */
export async function supabaseUser(): Promise<{ token: string; key: string }> {
  const claims = supabaseClaims();
  return { token: await supabaseHs256(claims), key: `supabase:${claims.sub}` };
}

export const TERMINAL = new Set(["done", "error"]);

/** The contract's framing: ids 1..n, known event names, exactly one terminal event, last. */
export function expectFraming(events: SseEvent[]): void {
  expect(events.map((e) => e.id)).toEqual(events.map((_, i) => String(i + 1)));
  for (const e of events) {
    expect(["message_chunk", "heartbeat", "done", "error"]).toContain(e.event);
  }
  expect(events.filter((e) => TERMINAL.has(e.event ?? "")).length).toBe(1);
  expect(TERMINAL.has(events.at(-1)?.event ?? "")).toBe(true);
}

export const chunksOf = (events: SseEvent[]) =>
  events.filter((e) => e.event === "message_chunk").map((e) => e.data as unknown as ChunkData);
export const doneOf = (events: SseEvent[]) => {
  const done = events.find((e) => e.event === "done");
  expect(done, "a done event").toBeDefined();
  return done?.data as unknown as DoneData;
};
export const errorOf = (events: SseEvent[]) => {
  const error = events.find((e) => e.event === "error");
  expect(error, "an error event").toBeDefined();
  return error?.data as unknown as ErrorData;
};

/** Exact cost in µUSD from prices in hundredths of a µUSD per token (no floats involved). */
export const PRICES_CENTI_MICRO: Record<string, [number, number]> = {
  "gpt-4o-mini": [15, 60],
  "gpt-4o": [250, 1000],
};
export function expectedMicro(model: string, input: number, output: number): number {
  const [pin, pout] = PRICES_CENTI_MICRO[model] as [number, number];
  return Math.ceil((input * pin + output * pout) / 100);
}

/** The prompt tokens the fake reports: its own rule over the messages it was sent. */
export const fakePromptTokens = (message: string) =>
  Math.ceil(JSON.stringify([{ role: "user", content: message }]).length / 4);
