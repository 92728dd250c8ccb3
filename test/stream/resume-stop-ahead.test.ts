/**
 * @module A Stop that reaches the stream's owner before the stream's own start (the page stops
 * right after sending, while the start still waits for the limit checks): DELETE answers 404,
 * and a start of that id within STOP_AHEAD_MS does not run and spends nothing; the next one runs.
 */
import { describe, expect, it } from "vitest";
import { anonCaller, fakeMessage, upstreamRecord, usageOf } from "../helpers/gate";
import { readEvents } from "../helpers/sse";
import { kept, resumeEnv, resumeStream, startStream, stopStream } from "./resume-helpers";

const STORES = ["durable_object", "upstash"] as const;
const newId = () => `s-${crypto.randomUUID().slice(0, 12)}`;

describe.each(STORES)("a Stop before its stream's start, in the %s store", (kind) => {
  it("keeps the stream from running: 499, nothing spent, nothing to resume; the next start runs", async () => {
    const bindings = resumeEnv(kind);
    const who = await anonCaller();
    const id = newId();
    const before = await usageOf(who, bindings);
    expect(before.quota).not.toBeNull();

    const stop = await stopStream(who, id, bindings);
    expect(stop.res.status).toBe(404);
    const { id: fake, message } = fakeMessage({ tokens: 5 });
    const started = await startStream(who, message, id, bindings);
    expect(started.res.status).toBe(499);
    await started.settled();
    expect(await upstreamRecord(fake)).toBeNull();
    const after = await usageOf(who, bindings);
    expect(after.quota?.hourly.remaining).toBe(before.quota?.hourly.remaining);
    expect(after.quota?.total.remaining).toBe(before.quota?.total.remaining);
    expect(after.budget?.held_usd).toBe(0);
    expect(after.spend.streams).toBe(before.spend.streams);
    expect((await resumeStream(who, id, bindings)).res.status).toBe(404);

    // The stop was for that one start: the id can be started again, and runs.
    const again = await startStream(who, fakeMessage({ tokens: 3 }).message, id, bindings);
    expect(again.res.status).toBe(200);
    const events = kept(await readEvents(again.res));
    await again.settled();
    expect(events.at(-1)?.event).toBe("done");
  });
});
