/**
 * @module A resumable stream's life in workerd, in both stores: the orphan grace with and
 * without a reconnect, DELETE with a reader attached, 409 for a live id, two readers at once,
 * one record and one settlement whatever the readers do, and storage written per batch.
 */
import { decodeJwt } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import { json } from "../helpers/app";
import { anonCaller, fakeMessage, upstreamRecord, usageOf, type Who } from "../helpers/gate";
import { waitForRows } from "../helpers/ledger";
import { openEvents, readEvents } from "../helpers/sse";
import { pinClock } from "../helpers/stores";
import {
  comparable,
  kept,
  ownerStub,
  resumeEnv,
  resumeStream,
  sleep,
  startStream,
  stopStream,
  terminals,
} from "./resume-helpers";

const STORES = ["durable_object", "upstash"] as const;
const keyOf = (who: Who) => `anonymous:${decodeJwt(who.token).sub}`;
const newId = () => `s-${crypto.randomUUID().slice(0, 12)}`;

/** Polls the fake's record of directive `id` until `until` holds (≈3 s). */
async function upstreamUntil(
  id: string,
  until: (r: { clientAborted: boolean; finished: boolean }) => boolean,
) {
  let r = await upstreamRecord(id);
  for (let i = 0; i < 60 && !(r && until(r)); i++) {
    await sleep(50);
    r = await upstreamRecord(id);
  }
  return r;
}

// pinClock stops the clock for a test; the next starts with the real one.
afterEach(() => {
  vi.useRealTimers();
});

describe.each(STORES)("a resumable stream's life in the %s store", (kind) => {
  it("is cancelled as client_abort when no reader comes back within the grace", async () => {
    // Exact hourly counts: no turn of the hour during the test.
    pinClock(3_600_000, 60_000);
    const bindings = resumeEnv(kind, { STREAM_ORPHAN_GRACE_MS: "100" });
    const { id: fake, message } = fakeMessage({ tokens: 60, delay: 50 });
    const who = await anonCaller();
    const first = await startStream(who, message, newId(), bindings);
    const reader = openEvents(first.res);
    await reader.next();
    await reader.cancel();
    const seen = await upstreamUntil(fake, (r) => r.clientAborted);
    expect(seen?.clientAborted).toBe(true);
    expect(seen?.tokensSent).toBeLessThan(60);
    await first.settled();
    const [row, ...more] = await waitForRows(keyOf(who), 1);
    expect(more).toEqual([]);
    expect(row).toMatchObject({ finish_reason: "client_abort" });
    expect(row?.output_tokens).toBeGreaterThan(0);
    const u = await usageOf(who, bindings);
    expect(u.budget?.held_usd).toBe(0);
    expect(u.quota?.hourly.remaining).toBe(19);
  });

  it("runs to its end when the reader reconnects within the grace, recorded once", async () => {
    const bindings = resumeEnv(kind, { STREAM_ORPHAN_GRACE_MS: "5000" });
    const { id: fake, message } = fakeMessage({ tokens: 15, delay: 40 });
    const who = await anonCaller();
    const id = newId();
    const first = await startStream(who, message, id, bindings);
    const reader = openEvents(first.res);
    const had = [await reader.next(), await reader.next()];
    await reader.cancel();
    // Gone, then back twice: each resume picks up where the last one stopped.
    const second = await resumeStream(who, id, bindings, { lastEventId: had[1]?.id ?? "" });
    const r2 = openEvents(second.res);
    const mid = [await r2.next()];
    await r2.cancel();
    const third = await resumeStream(who, id, bindings, { lastEventId: mid[0]?.id ?? "" });
    const rest = await readEvents(third.res);
    const joined = kept([...had, ...mid, ...rest].filter((e) => e !== null));
    expect(terminals(joined).map((e) => e.data.finish_reason)).toEqual(["stop"]);
    expect(joined.filter((e) => e.event === "message_chunk").length).toBe(15);
    expect((await upstreamUntil(fake, (r) => r.finished))?.clientAborted).toBe(false);
    await Promise.all([first.settled(), second.settled(), third.settled()]);
    const rows = await waitForRows(keyOf(who), 1);
    expect(rows.map((r) => r.finish_reason)).toEqual(["stop"]);
    const u = await usageOf(who, bindings);
    expect(u.spend.streams).toBe(1);
    expect(u.budget?.held_usd).toBe(0);
  });

  it("stops at once on DELETE: every reader gets done stopped; 204, again 204, unknown 404", async () => {
    const bindings = resumeEnv(kind);
    const { id: fake, message } = fakeMessage({ tokens: 100, delay: 40 });
    const who = await anonCaller();
    const id = newId();
    const first = await startStream(who, message, id, bindings);
    const a = openEvents(first.res);
    await a.next();
    const second = await resumeStream(who, id, bindings, { lastEventId: "1" });
    const b = openEvents(second.res);
    await b.next();

    const stop = await stopStream(who, id, bindings);
    expect(stop.res.status).toBe(204);
    const [restA, restB] = await Promise.all([a.rest(), b.rest()]);
    for (const rest of [restA, restB]) {
      expect(terminals(rest).map((e) => [e.event, e.data.finish_reason])).toEqual([
        ["done", "stopped"],
      ]);
    }
    expect((await upstreamUntil(fake, (r) => r.clientAborted))?.tokensSent).toBeLessThan(100);
    expect((await stopStream(who, id, bindings)).res.status).toBe(204);
    expect((await stopStream(who, newId(), bindings)).res.status).toBe(404);
    await Promise.all([first.settled(), second.settled()]);
    const rows = await waitForRows(keyOf(who), 1);
    expect(rows.map((r) => r.finish_reason)).toEqual(["stopped"]);
    expect((await usageOf(who, bindings)).budget?.held_usd).toBe(0);
  });

  it("answers 409 stream_exists for a live id of the same principal, spending nothing; another principal's equal id is its own stream", async () => {
    // Exact hourly counts: no turn of the hour during the test.
    pinClock(3_600_000, 60_000);
    const bindings = resumeEnv(kind);
    const { message } = fakeMessage({ tokens: 20, delay: 40 });
    const who = await anonCaller();
    const id = newId();
    const first = await startStream(who, message, id, bindings);
    expect(first.res.status).toBe(200);
    const twice = await startStream(who, message, id, bindings);
    expect(twice.res.status).toBe(409);
    expect(await json(twice.res)).toMatchObject({ error_code: "stream_exists" });
    await twice.settled();
    const other = await anonCaller();
    const theirs = await startStream(other, fakeMessage({ tokens: 2 }).message, id, bindings);
    expect(theirs.res.status).toBe(200);
    expect(terminals(await readEvents(theirs.res)).map((e) => e.event)).toEqual(["done"]);
    await readEvents(first.res);
    await Promise.all([first.settled(), theirs.settled()]);
    // The 409 spent no quota unit and left no hold; the stream is one record.
    const u = await usageOf(who, bindings);
    expect(u.quota?.hourly.remaining).toBe(19);
    expect(u.spend.streams).toBe(1);
    expect(u.budget?.held_usd).toBe(0);
    // Once it has ended, the id may start a new stream.
    const again = await startStream(who, fakeMessage({ tokens: 2 }).message, id, bindings);
    expect(again.res.status).toBe(200);
    await readEvents(again.res);
    await again.settled();
  });

  it("serves two readers at once the same events, and writes storage per batch, not per token", async () => {
    const bindings = resumeEnv(kind);
    const { message } = fakeMessage({ tokens: 40, delay: 10 });
    const who = await anonCaller();
    const id = newId();
    const first = await startStream(who, message, id, bindings);
    const second = await resumeStream(who, id, bindings);
    expect(second.res.status).toBe(200);
    const [a, b] = await Promise.all([readEvents(first.res), readEvents(second.res)]);
    expect(kept(b).map(comparable)).toEqual(kept(a).map(comparable));
    expect(kept(a).filter((e) => e.event === "message_chunk").length).toBe(40);
    await Promise.all([first.settled(), second.settled()]);
    // 40 tokens in well under a second: one row (its frames and its end), a row a second at
    // most on a slow machine.
    const writes = await ownerStub(keyOf(who)).writes(id);
    expect(writes).toBeGreaterThan(0);
    expect(writes).toBeLessThanOrEqual(3);
  });
});
