/**
 * @module The durable ledger in workerd: a stream's record goes through the Queue to D1 exactly
 * once (redelivered batches, replays), poison messages, and a failing send that is logged.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { parseConfig } from "../../src/config";
import type { Bindings } from "../../src/env";
import { consumeLedger } from "../../src/ledger/consume";
import { D1LedgerBook } from "../../src/ledger/d1-book";
import type { LedgerBook, LedgerSink } from "../../src/ledger/ports";
import type { LedgerRecord } from "../../src/ledger/record";
import { ledgerSinkFor, SEND_FAILED_EVENT, sendLedger, writeLedger } from "../../src/ledger/write";
import { storeFor } from "../../src/limits/select-store";
import { createLogger } from "../../src/observe/log";
import { call, json, testEnv } from "../helpers/app";
import { deliver, record, rowsOf, waitForRows } from "../helpers/ledger";
import { readEvents } from "../helpers/sse";
import { bearer, supabaseClaims, supabaseHs256 } from "../helpers/tokens";

const bindings = env as unknown as Bindings;
const book = new D1LedgerBook(bindings.LEDGER_DB);
const ADMIN_TOKEN = "admin-token-for-the-ledger-tests-0123456789";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("the ledger queue", () => {
  it("carries a stream's record to D1 exactly once, with the stream's figures", async () => {
    const claims = supabaseClaims();
    const user = `supabase:${claims.sub}`;
    const { res, settled } = await call("/api/v1/stream?message=Hello%20ledger", {
      headers: bearer(await supabaseHs256(claims)),
    });
    expect(res.status).toBe(200);
    const events = await readEvents(res);
    const done = events.find((e) => e.event === "done")?.data as Record<string, number | string>;
    await settled();
    const rows = await waitForRows(user, 1);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      stream_id: done.stream_id,
      user,
      model: done.model,
      input_tokens: done.input_tokens,
      output_tokens: done.output_tokens,
      cost_micro_usd: Math.round(Number(done.cost_usd) * 1e6),
      finish_reason: done.finish_reason,
      day: new Date().toISOString().slice(0, 10),
    });
  });

  it("writes a redelivered batch, and a record twice in one batch, only once", async () => {
    const a = record();
    const b = record({ userKey: a.userKey });
    const first = await deliver([a, b, { ...a }]);
    expect(first.explicitAcks).toHaveLength(3);
    expect(first.retryMessages).toHaveLength(0);
    const again = await deliver([a, b]);
    expect(again.explicitAcks).toHaveLength(2);
    const rows = await rowsOf(a.userKey);
    expect(rows.map((r) => r.record_id).sort()).toEqual([a.recordId, b.recordId].sort());
  });

  it("acks and logs a poison message and writes the rest of its batch", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const good = [record(), record()];
    const { recordId: _, ...noId } = record();
    const result = await deliver([
      good[0],
      "not a record",
      { ...record(), costMicroUsd: -5 },
      noId,
      good[1],
    ]);
    expect(result.explicitAcks).toHaveLength(5);
    expect(result.retryMessages).toHaveLength(0);
    for (const r of good) expect(await rowsOf(r.userKey)).toHaveLength(1);
    const poison = errors.mock.calls
      .map((args) => JSON.parse(String(args[0])) as Record<string, unknown>)
      .filter((l) => l.event === "ledger_poison_message");
    expect(poison).toHaveLength(3);
    expect(String(poison[0]?.body)).toContain("not a record");
  });

  it("retries only the messages whose write keeps failing, and writes the others", async () => {
    vi.spyOn(console, "warn").mockImplementation(() => {});
    const ok = record();
    const stuck = record();
    // The real D1 book, except that any insert holding `stuck` fails (a write D1 refuses).
    const flaky: LedgerBook = {
      kind: "d1",
      insert: async (records) => {
        if (records.some((r) => r.recordId === stuck.recordId)) throw new Error("D1 is down");
        return book.insert(records);
      },
      spend: book.spend.bind(book),
      records: book.records.bind(book),
    };
    const batch = createMessageBatch("magic-ledger", [
      { id: "ok", timestamp: new Date(), attempts: 1, body: ok },
      { id: "stuck", timestamp: new Date(), attempts: 1, body: stuck },
    ]);
    const result = await consumeLedger(batch, flaky);
    expect(result).toMatchObject({ written: 1, retried: 1, poison: 0 });
    const outcome = await getQueueResult(batch, createExecutionContext());
    expect(outcome.explicitAcks).toEqual(["ok"]);
    expect(outcome.retryMessages.map((m: { msgId: string }) => m.msgId)).toEqual(["stuck"]);
    expect(await rowsOf(ok.userKey)).toHaveLength(1);
    expect(await rowsOf(stuck.userKey)).toHaveLength(0);
  });
});

describe("a failed send and its replay", () => {
  it("retries a failing send, logs the record, and a replay writes it once", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    let attempts = 0;
    const down: LedgerSink = {
      kind: "queue",
      send: async () => {
        attempts++;
        throw new Error("queue unavailable");
      },
    };
    const lost = record();
    expect(await sendLedger(lost, createLogger("test"), [1, 1], down)).toBe("failed");
    expect(attempts).toBe(3);
    const line = errors.mock.calls
      .map((args) => JSON.parse(String(args[0])) as Record<string, unknown>)
      .find((l) => l.event === SEND_FAILED_EVENT);
    expect(line?.attempts).toBe(3);
    const replayed = JSON.parse(String(line?.replay)) as LedgerRecord;
    expect(replayed).toEqual(lost);

    const admin = testEnv({ ADMIN_TOKEN });
    const post = () =>
      call(
        "/api/v1/admin/ledger",
        {
          method: "POST",
          headers: { ...bearer(ADMIN_TOKEN), "Content-Type": "application/json" },
          body: JSON.stringify({ records: [replayed] }),
        },
        admin,
      );
    const first = await post();
    expect(first.res.status).toBe(200);
    expect(await first.res.json()).toEqual({ written: 1, duplicate: 0 });
    const second = await post();
    expect(await second.res.json()).toEqual({ written: 0, duplicate: 1 });
    // The queue delivering the same record later (the send had reached it after all) adds nothing.
    await deliver([replayed]);
    const rows = await rowsOf(lost.userKey);
    expect(rows.map((r) => r.record_id)).toEqual([lost.recordId]);
  });

  it("writes the limits store and sends to the queue; a failed send leaves the store write alone", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const bindings = testEnv();
    const store = storeFor(parseConfig(bindings), bindings);
    const sent: LedgerRecord[] = [];
    const up: LedgerSink = { kind: "queue", send: async (r) => void sent.push(r) };
    const down: LedgerSink = { kind: "queue", send: () => Promise.reject(new Error("no queue")) };
    const a = record();
    expect(await writeLedger(store, a, createLogger("test"), [1], up)).toBe("written");
    expect(sent).toEqual([a]);
    const b = record();
    expect(await writeLedger(store, b, createLogger("test"), [1], down)).toBe("written");
    expect(await writeLedger(store, b, createLogger("test"), [1], up)).toBe("duplicate");
    expect(sent).toEqual([a, b]);
    const failed = errors.mock.calls.filter((c) => String(c[0]).includes(SEND_FAILED_EVENT));
    expect(failed).toHaveLength(1);
  });
});

describe("a worker without Queues (the Workers Free plan)", () => {
  it("sends to the queue when one is bound, and straight to D1 when none is", () => {
    expect(ledgerSinkFor(bindings).kind).toBe("queue");
    expect(ledgerSinkFor({ LEDGER_DB: bindings.LEDGER_DB }).kind).toBe("d1");
  });

  it("writes a stream's record to D1 at once, and a resend of it nothing more", async () => {
    const sink = ledgerSinkFor({ LEDGER_DB: bindings.LEDGER_DB });
    const r = record();
    expect(await sendLedger(r, createLogger("test"), [1], sink)).toBe("sent");
    // No queue, no consumer, no waiting: the row is there when the send resolves.
    expect((await rowsOf(r.userKey)).map((row) => row.record_id)).toEqual([r.recordId]);
    expect(await sendLedger({ ...r }, createLogger("test"), [1], sink)).toBe("sent");
    expect(await rowsOf(r.userKey)).toHaveLength(1);
  });
});

describe("POST /api/v1/admin/ledger (replay)", () => {
  const post = (body: string, type = "application/json", token = ADMIN_TOKEN) =>
    call(
      "/api/v1/admin/ledger",
      { method: "POST", headers: { ...bearer(token), "Content-Type": type }, body },
      testEnv({ ADMIN_TOKEN }),
    ).then((c) => c.res);

  it("writes nothing when one record of the body is not a record", async () => {
    const good = record();
    const res = await post(JSON.stringify({ records: [good, { ...record(), inputTokens: 1.5 }] }));
    expect(res.status).toBe(422);
    expect((await json<{ fields: string[] }>(res)).fields).toEqual(["records.1.inputTokens"]);
    expect(await rowsOf(good.userKey)).toHaveLength(0);
  });

  it("refuses a body that is not JSON, and a wrong token, writing nothing", async () => {
    const good = record();
    expect((await post(JSON.stringify({ records: [good] }), "text/plain")).status).toBe(415);
    expect(
      (await post(JSON.stringify({ records: [good] }), undefined, `${ADMIN_TOKEN}!`)).status,
    ).toBe(401);
    expect((await post(JSON.stringify({ records: [] }))).status).toBe(422);
    expect(await rowsOf(good.userKey)).toHaveLength(0);
  });
});
