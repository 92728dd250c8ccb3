/**
 * @module Resumable streams end to end in workerd, in both stores: a reader that drops resumes by
 * `Last-Event-ID`, by `?after=` and by the original URL, and what it joins equals an undisturbed
 * stream; the end, 204 past it, and expiry; another principal's 404; money once per stream.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { decodeJwt } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import { call, json } from "../helpers/app";
import { anonCaller, fakeMessage, usageOf, type Who } from "../helpers/gate";
import { openEvents, readEvents, type SseEvent } from "../helpers/sse";
import { pinClock } from "../helpers/stores";
import { bearer } from "../helpers/tokens";
import {
  comparable,
  kept,
  ownerStub,
  resumeEnv,
  resumeStream,
  startStream,
  terminals,
} from "./resume-helpers";

const STORES = ["durable_object", "upstash"] as const;
const keyOf = (who: Who) => `anonymous:${decodeJwt(who.token).sub}`;
const newId = () => `s-${crypto.randomUUID().slice(0, 12)}`;

/** Reads `n` events (heartbeats included) and returns them; the reader stays open. */
async function take(reader: ReturnType<typeof openEvents>, n: number): Promise<SseEvent[]> {
  const out: SseEvent[] = [];
  while (out.length < n) {
    const e = await reader.next();
    if (e === null) break;
    out.push(e);
  }
  return out;
}

/** One undisturbed stream of `message`: its events without heartbeats. */
async function undisturbed(message: string, bindings: ReturnType<typeof resumeEnv>) {
  const who = await anonCaller();
  const { res, settled } = await startStream(who, message, newId(), bindings);
  const events = kept(await readEvents(res));
  await settled();
  return events;
}

describe.each(STORES)("resume in the %s store", (kind) => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("joins a dropped reader and its resume by Last-Event-ID into the undisturbed stream, billed once", async () => {
    // Exact hourly counts: no turn of the hour during the test.
    pinClock(3_600_000, 60_000);
    const bindings = resumeEnv(kind);
    const { message } = fakeMessage({ tokens: 12, delay: 40 });
    const who = await anonCaller();
    const id = newId();
    const first = await startStream(who, message, id, bindings);
    expect(first.res.status).toBe(200);
    expect(first.res.headers.get("X-Stream-Id")).toBe(id);
    const reader = openEvents(first.res);
    const had = await take(reader, 3);
    await reader.cancel();

    const last = had.at(-1)?.id ?? "0";
    const resumed = await resumeStream(who, id, bindings, { lastEventId: last });
    expect(resumed.res.status).toBe(200);
    expect(resumed.res.headers.get("Content-Type")).toContain("text/event-stream");
    const rest = await readEvents(resumed.res);
    await Promise.all([first.settled(), resumed.settled()]);

    const joined = kept([...had, ...rest]);
    expect(Number(rest[0]?.id)).toBe(Number(last) + 1);
    expect(terminals(joined).length).toBe(1);
    expect(joined.at(-1)?.event).toBe("done");
    expect(joined.at(-1)?.data.finish_reason).toBe("stop");
    const alone = await undisturbed(message, bindings);
    expect(joined.map(comparable)).toEqual(alone.map(comparable));

    // One stream: one quota unit, one record, its hold settled (nothing held any more).
    const after = await usageOf(who, bindings);
    expect(after.quota?.hourly.remaining).toBe(19);
    expect(after.spend.streams).toBe(1);
    expect(after.budget?.held_usd).toBe(0);
    expect(after.budget?.spent_usd).toBeCloseTo(after.spend.total_usd, 9);
  });

  it("resumes by ?after=n and by the original URL with Last-Event-ID", async () => {
    // Exact hourly counts: no turn of the hour during the test.
    pinClock(3_600_000, 60_000);
    const bindings = resumeEnv(kind);
    const { message } = fakeMessage({ tokens: 10, delay: 40 });
    const who = await anonCaller();
    const id = newId();
    const first = await startStream(who, message, id, bindings);
    const reader = openEvents(first.res);
    const had = await take(reader, 2);
    await reader.cancel();

    const byQuery = await resumeStream(who, id, bindings, { query: "?after=1" });
    expect(byQuery.res.status).toBe(200);
    const viaAfter = kept(await readEvents(byQuery.res));
    expect(viaAfter[0]?.id).toBe("2");
    expect(viaAfter[0]).toEqual(had[1]);

    // What EventSource sends when it reconnects by itself.
    const again = await startStream(who, message, id, bindings, { "Last-Event-ID": "2" });
    expect(again.res.status).toBe(200);
    const viaUrl = kept(await readEvents(again.res));
    expect(viaUrl.map(comparable)).toEqual(viaAfter.slice(1).map(comparable));
    await Promise.all([first.settled(), byQuery.settled(), again.settled()]);
    // The reconnect started nothing: one stream, one quota unit.
    const u = await usageOf(who, bindings);
    expect(u.spend.streams).toBe(1);
    expect(u.quota?.hourly.remaining).toBe(19);
  });

  it("replays an ended stream from its storage, answers 204 past its end and 404 once expired", async () => {
    const bindings = resumeEnv(kind, { STREAM_RESUME_TTL_S: "600" });
    // Time is an input: the stream ends at `end`, so its expiry is an exact instant.
    const end = Date.now();
    vi.useFakeTimers({ toFake: ["Date"], now: end });
    const { message } = fakeMessage({ tokens: 6 });
    const who = await anonCaller();
    const id = newId();
    const first = await startStream(who, message, id, bindings);
    const all = kept(await readEvents(first.res));
    await first.settled();
    const lastId = all.at(-1)?.id ?? "";

    const whole = await resumeStream(who, id, bindings);
    expect(kept(await readEvents(whole.res))).toEqual(all);
    const tail = await resumeStream(who, id, bindings, { lastEventId: all.at(-3)?.id ?? "" });
    expect(await readEvents(tail.res)).toEqual(all.slice(-2));
    const past = await resumeStream(who, id, bindings, { lastEventId: lastId });
    expect(past.res.status).toBe(204);
    expect(await past.res.text()).toBe("");

    // The alarm is set STREAM_RESUME_TTL_S after the end; when it runs, the stream is gone.
    const owner = ownerStub(keyOf(who));
    const alarm = await runInDurableObject(owner, (_o, state) => state.storage.getAlarm());
    expect(alarm).toBe(end + 600_000);
    expect(await runDurableObjectAlarm(owner)).toBe(true);
    const expired = await resumeStream(who, id, bindings, { lastEventId: "1" });
    expect(expired.res.status).toBe(404);
    expect((await json(expired.res)).error_code).toBe("not_found");
  });

  it("answers another principal, an unknown id and a malformed id the same 404", async () => {
    const bindings = resumeEnv(kind);
    const who = await anonCaller();
    const id = newId();
    const first = await startStream(who, fakeMessage({ tokens: 3 }).message, id, bindings);
    await readEvents(first.res);
    await first.settled();
    const other = await anonCaller();
    const answers = await Promise.all([
      resumeStream(other, id, bindings),
      resumeStream(who, newId(), bindings),
      resumeStream(who, "bad%20id", bindings),
    ]);
    for (const { res } of answers) {
      expect(res.status).toBe(404);
      expect(await json(res)).toMatchObject({ error_code: "not_found" });
    }
    // Stopping another principal's stream is the same 404.
    const stop = await call(
      `/api/v1/streams/${id}`,
      { method: "DELETE", headers: bearer(other.token), ip: other.ip },
      bindings,
    );
    expect(stop.res.status).toBe(404);
  });

  it("counts resumes against RATE_LIMIT_USAGE, not the stream limits or the quota", async () => {
    // Exact hourly counts: no turn of the hour during the test.
    pinClock(3_600_000, 60_000);
    const bindings = resumeEnv(kind, { RATE_LIMIT_USAGE: "3/60s" });
    const who = await anonCaller();
    const id = newId();
    const first = await startStream(who, fakeMessage({ tokens: 3 }).message, id, bindings);
    await readEvents(first.res);
    await first.settled();
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const { res } = await resumeStream(who, id, bindings, { lastEventId: "1" });
      statuses.push(res.status);
      await res.body?.cancel();
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    // The stream windows and the quota still show one stream only (this read is refused too,
    // since usage reads share the window, so look at the store's spend through a new window).
    const fresh = resumeEnv(kind);
    const u = await usageOf(who, {
      ...fresh,
      UPSTASH_REDIS_REST_URL: bindings.UPSTASH_REDIS_REST_URL,
    });
    expect(u.quota?.hourly.remaining).toBe(19);
    expect(u.spend.streams).toBe(1);
  });
});
