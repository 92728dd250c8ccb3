/** @module Starting, reading, resuming and stopping resumable streams in the tests. */
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import { parseConfig } from "../../src/config";
import type { Bindings } from "../../src/env";
import type { LedgerRecord } from "../../src/ledger/record";
import type { LimitsStore } from "../../src/limits/durable-object";
import type { StreamOwner } from "../../src/stream/owner";
import { call, testEnv } from "../helpers/app";
import type { Who } from "../helpers/gate";
import type { SseEvent } from "../helpers/sse";
import { type StoreKind, storeEnv } from "../helpers/stores";
import { bearer } from "../helpers/tokens";

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The env of a resume test: `kind`'s store, a long grace unless given. */
export function resumeEnv(kind: StoreKind, overrides: Record<string, string> = {}): Bindings {
  return storeEnv(kind, { STREAM_ORPHAN_GRACE_MS: "10000", ...overrides });
}

/** GET /api/v1/stream as `who`, with `stream_id` and optional extra headers. */
export function startStream(
  who: Who,
  message: string,
  streamId: string,
  bindings: Bindings,
  headers: Record<string, string> = {},
) {
  const query = new URLSearchParams({ message, stream_id: streamId });
  return call(
    `/api/v1/stream?${query}`,
    { headers: { ...bearer(who.token), ...headers }, ip: who.ip },
    bindings,
  );
}

/** GET /api/v1/streams/{id}, with `Last-Event-ID` when `lastEventId` is given, or a query. */
export function resumeStream(
  who: Who,
  streamId: string,
  bindings: Bindings,
  o: { lastEventId?: string; query?: string } = {},
) {
  const headers: Record<string, string> = { ...bearer(who.token) };
  if (o.lastEventId !== undefined) headers["Last-Event-ID"] = o.lastEventId;
  return call(`/api/v1/streams/${streamId}${o.query ?? ""}`, { headers, ip: who.ip }, bindings);
}

/** DELETE /api/v1/streams/{id}. */
export function stopStream(who: Who, streamId: string, bindings: Bindings) {
  return call(
    `/api/v1/streams/${streamId}`,
    { method: "DELETE", headers: bearer(who.token), ip: who.ip },
    bindings,
  );
}

/** The events that a replay keeps (heartbeats are not replayed). */
export const kept = (events: SseEvent[]) => events.filter((e) => e.event !== "heartbeat");

/** An event without the figures that differ between two runs of the same stream. */
export function comparable(e: SseEvent) {
  if (e.event !== "done") return { id: e.id, event: e.event, data: e.data };
  const { ttft_ms: _t, duration_ms: _d, stream_id: _s, quota: _q, ...rest } = e.data;
  return { event: e.event, data: rest };
}

/** The terminal events of a list. */
export const terminals = (events: SseEvent[]) =>
  events.filter((e) => e.event === "done" || e.event === "error");

/** The ledger records of `key` in the Durable Object store, polled until there are `n` (≈3 s). */
export async function recordsOf(key: string, n = 1): Promise<LedgerRecord[]> {
  const ns = env.LIMITS as unknown as DurableObjectNamespace<LimitsStore>;
  const prefix = parseConfig(testEnv()).storePrefix;
  const stub = ns.get(ns.idFromName(`${prefix}:user:${key}`));
  let records = (await stub.records()) as LedgerRecord[];
  for (let i = 0; i < 60 && records.length < n; i++) {
    await sleep(50);
    records = (await stub.records()) as LedgerRecord[];
  }
  return records;
}

/** The owner object of a principal's streams, named as the worker names it. */
export function ownerStub(key: string): DurableObjectStub<StreamOwner> {
  const ns = env.STREAMS as unknown as DurableObjectNamespace<StreamOwner>;
  return ns.get(ns.idFromName(`${parseConfig(testEnv()).storePrefix}:streams:${key}`));
}

/** Ids 1..n with gaps only where heartbeats were, strictly increasing. */
export function expectIncreasingIds(events: SseEvent[]): void {
  const ids = events.map((e) => Number(e.id));
  for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1] as number);
}
