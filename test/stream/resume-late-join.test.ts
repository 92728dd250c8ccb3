/**
 * @module A reader that joins a live stream after some of its batches were stored: the owner
 * keeps only the unstored batch in memory, so what the reader missed comes back from storage,
 * in order, with nothing repeated or missing. Both stores.
 */
import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";
import { anonCaller, fakeMessage, type Who } from "../helpers/gate";
import { openEvents, readEvents, type SseEvent } from "../helpers/sse";
import {
  comparable,
  kept,
  ownerStub,
  resumeEnv,
  resumeStream,
  sleep,
  startStream,
} from "./resume-helpers";

const keyOf = (who: Who) => `anonymous:${decodeJwt(who.token).sub}`;
const newId = () => `s-${crypto.randomUUID().slice(0, 12)}`;

describe.each(["durable_object", "upstash"] as const)("a late join in the %s store", (kind) => {
  it("reads the stored batches back and follows the live rest: the joined stream is the undisturbed one", async () => {
    const bindings = resumeEnv(kind);
    // About 2.4 s of tokens: the 1 s batch timer stores at least one batch while it is live.
    const { message } = fakeMessage({ tokens: 60, delay: 40 });
    const who = await anonCaller();
    const id = newId();
    const first = await startStream(who, message, id, bindings);
    const reader = openEvents(first.res);
    const had: SseEvent[] = [];
    for (let e = await reader.next(); e && had.length < 2; e = await reader.next()) had.push(e);
    await reader.cancel();
    // Wait for a stored batch (a condition, not a time): the owner's rows written so far.
    const owner = ownerStub(keyOf(who));
    for (let i = 0; i < 100 && (await owner.writes(id)) < 1; i++) await sleep(30);
    expect(await owner.writes(id)).toBeGreaterThanOrEqual(1);

    const resumed = await resumeStream(who, id, bindings, { lastEventId: had.at(-1)?.id ?? "0" });
    expect(resumed.res.status).toBe(200);
    const rest = await readEvents(resumed.res);
    await Promise.all([first.settled(), resumed.settled()]);
    const joined = kept([...had, ...rest]);
    // Every event once, in order: ids strictly increase (heartbeats left gaps).
    const ids = joined.map((e) => Number(e.id));
    for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1] as number);
    expect(joined.at(-1)?.event).toBe("done");

    const alone = await startStream(await anonCaller(), message, newId(), bindings);
    const undisturbed = kept(await readEvents(alone.res));
    await alone.settled();
    expect(joined.map(comparable)).toEqual(undisturbed.map(comparable));
  });
});
