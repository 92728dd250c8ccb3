/**
 * @module A stream id used again after its stream ended: the new stream replaces the old one on
 * disk when it starts (its row, live, and none of the old frames), so an owner that restarts
 * before the new stream's first batch never resumes the old stream under the new one's start.
 * A fresh id writes nothing before its first batch. The owner's storage is read directly, as an
 * owner restarted on the same storage would read it (FrameStore over the same SQLite).
 */
import { runInDurableObject } from "cloudflare:test";
import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";
import { FrameStore } from "../../src/stream/frame-store";
import { anonCaller, fakeMessage, type Who } from "../helpers/gate";
import { openEvents, readEvents } from "../helpers/sse";
import { kept, ownerStub, resumeEnv, resumeStream, startStream, terminals } from "./resume-helpers";

const keyOf = (who: Who) => `anonymous:${decodeJwt(who.token).sub}`;
const newId = () => `s-${crypto.randomUUID().slice(0, 12)}`;

/** What an owner started afresh on this storage would find: the stream and its frames. */
async function onDisk(who: Who, id: string) {
  const owner = ownerStub(keyOf(who));
  return runInDurableObject(owner, (_o, state) => {
    const store = new FrameStore(state.storage.sql);
    return { stream: store.stream(id), frames: store.framesAfter(id, 0) };
  });
}

describe("a stream id used again after its stream ended", () => {
  it("is replaced on disk when the new stream starts, before its first token or batch", async () => {
    const bindings = resumeEnv("durable_object");
    const who = await anonCaller();
    const id = newId();
    const old = await startStream(
      who,
      fakeMessage({ tokens: 6, text: "old" }).message,
      id,
      bindings,
    );
    const oldEvents = kept(await readEvents(old.res));
    await old.settled();
    expect((await onDisk(who, id)).stream?.state).toBe("ended");
    const writesBefore = await ownerStub(keyOf(who)).writes(id);

    // The new stream's first token comes 1.5 s after its headers: the start is stored by then.
    const { message } = fakeMessage({ tokens: 4, text: "new", firstDelay: 1500 });
    const next = await startStream(who, message, id, bindings);
    expect(next.res.status).toBe(200);
    const reader = openEvents(next.res);
    const stored = await onDisk(who, id);
    expect(stored.stream).toMatchObject({ streamId: id, state: "live", lastId: 0, endedAt: null });
    expect(stored.frames).toEqual([]);

    const events = [];
    for (let e = await reader.next(); e !== null; e = await reader.next()) events.push(e);
    await next.settled();
    const newEvents = kept(events);
    expect(terminals(newEvents).map((e) => e.event)).toEqual(["done"]);
    expect(newEvents.filter((e) => e.event === "message_chunk").length).toBe(4);
    // A resume now gives the new stream, nothing of the old one.
    const whole = await resumeStream(who, id, bindings);
    const resumed = kept(await readEvents(whole.res));
    expect(resumed).toEqual(newEvents);
    expect(resumed).not.toEqual(oldEvents);
    // The old rows' deletion and the marker row, then a fresh id's writes (one row: its
    // frames and its end).
    const writes = (await ownerStub(keyOf(who)).writes(id)) - writesBefore;
    expect(writes).toBeLessThanOrEqual(5);
  });

  it("a fresh id writes nothing before its first batch", async () => {
    const bindings = resumeEnv("durable_object");
    const who = await anonCaller();
    const id = newId();
    const { message } = fakeMessage({ tokens: 3, firstDelay: 1500 });
    const first = await startStream(who, message, id, bindings);
    expect(first.res.status).toBe(200);
    const reader = openEvents(first.res);
    expect(await onDisk(who, id)).toEqual({ stream: null, frames: [] });
    expect(await ownerStub(keyOf(who)).writes(id)).toBe(0);
    while ((await reader.next()) !== null) {}
    await first.settled();
    expect((await onDisk(who, id)).stream?.state).toBe("ended");
  });
});
