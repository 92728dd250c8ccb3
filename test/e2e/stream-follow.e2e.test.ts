/**
 * @module The page's resumable reader (web/magic/follow.ts) in Node: a dropped body is resumed
 * from the last event id, overlaps are skipped, the backoff and the deadline hold, and every way
 * a resume can end. Time is pinned: sleep advances a fake clock.
 */
import { describe, expect, it, vi } from "vitest";
import {
  BACKOFF_MS,
  type Ending,
  follow,
  GIVE_UP_MS,
  type Position,
  STALL_MS,
} from "../../web/magic/follow";

const enc = new TextEncoder();
const frame = (id: number | null, event: string, data: Record<string, unknown>) =>
  `${id === null ? "" : `id: ${id}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
const chunk = (id: number, content: string) =>
  frame(id, "message_chunk", { content, output_tokens: id, cost_usd: 0 });
const done = (id: number) => frame(id, "done", { stream_id: "s1", finish_reason: "stop" });

/** A body that sends `text` and then ends, or breaks (a read error) when `broken`. */
function body(text: string, broken = false): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream({
    pull(c) {
      if (!sent) {
        sent = true;
        c.enqueue(enc.encode(text));
      } else if (broken) c.error(new TypeError("network error"));
      else c.close();
    },
  });
}
const sse = (text: string, status = 200) =>
  new Response(status === 200 ? body(text) : text, {
    status,
    headers: { "Content-Type": status === 200 ? "text/event-stream" : "application/json" },
  });

/** Runs follow() with scripted resume answers; records the resumes asked and the waits. */
async function run(
  first: ReadableStream<Uint8Array> | null,
  answers: (Response | Error)[],
  position: Position = { streamId: "s1", lastEventId: 0 },
  signal = new AbortController().signal,
) {
  let clock = 0;
  const asked: number[] = [];
  const waits: number[] = [];
  const events: string[] = [];
  const hooks: string[] = [];
  const ending: Ending = await follow(
    position,
    first,
    {
      event: (_e, d) => events.push(String(d.content)),
      reconnecting: (ms) => hooks.push(`reconnecting ${ms}`),
      reconnected: () => hooks.push("reconnected"),
    },
    {
      async resume(id, after) {
        expect(id).toBe("s1");
        asked.push(after);
        const next = answers.shift() ?? new TypeError("offline");
        if (next instanceof Error) throw next;
        return next;
      },
      async sleep(ms, s) {
        if (s.aborted) throw s.reason;
        waits.push(ms);
        clock += ms;
      },
      now: () => clock,
    },
    signal,
  );
  return { ending, asked, waits, events, hooks, position, elapsed: clock };
}

describe("follow", () => {
  it("resumes a broken body from the last event id and skips what it already has", async () => {
    const r = await run(body(chunk(1, "a") + chunk(2, "b") + chunk(3, "c"), true), [
      // The server sends an overlap (2, 3): each event reaches the answer once.
      sse(chunk(2, "b") + chunk(3, "c") + chunk(4, "d") + chunk(5, "e") + done(6)),
    ]);
    expect(r.ending).toMatchObject({ kind: "end", end: { event: "done" } });
    expect(r.events.join("")).toBe("abcde");
    expect(r.asked).toEqual([3]);
    expect(r.waits).toEqual([BACKOFF_MS[0]]);
    expect(r.hooks).toEqual([`reconnecting ${BACKOFF_MS[0]}`, "reconnected"]);
    expect(r.position.lastEventId).toBe(5);
  });

  it("resumes a body that ended without a terminal event, backing off while offline", async () => {
    const r = await run(body(chunk(1, "a")), [
      new TypeError("offline"),
      sse("", 503),
      new TypeError("offline"),
      sse(chunk(2, "b") + done(3)),
    ]);
    expect(r.ending.kind).toBe("end");
    expect(r.events.join("")).toBe("ab");
    expect(r.asked).toEqual([1, 1, 1, 1]);
    expect(r.waits).toEqual(BACKOFF_MS.slice(0, 4));
  });

  it("after a reload starts with a resume at once, from the remembered id", async () => {
    const r = await run(null, [sse(chunk(8, "h") + done(9))], { streamId: "s1", lastEventId: 7 });
    expect(r.asked).toEqual([7]);
    expect(r.waits).toEqual([]);
    expect(r.events).toEqual(["h"]);
  });

  it("ends 'gone' on 404 and 'complete' on 204", async () => {
    expect((await run(null, [sse('{"error_code":"not_found"}', 404)])).ending).toEqual({
      kind: "gone",
    });
    expect((await run(body(chunk(1, "a")), [new Response(null, { status: 204 })])).ending).toEqual({
      kind: "complete",
    });
  });

  it("waits as long as a 429 asks, and ends 'refused' on other client errors", async () => {
    const limited = new Response('{"error_code":"rate_limited","retry_after":3}', {
      status: 429,
      headers: { "Content-Type": "application/json", "Retry-After": "3" },
    });
    const r = await run(null, [limited, sse(done(1))]);
    expect(r.waits).toEqual([3000]);
    expect(r.ending.kind).toBe("end");
    const refused = await run(null, [sse('{"error_code":"unauthorized","detail":"no"}', 401)]);
    expect(refused.ending).toMatchObject({ kind: "refused", error: { code: "unauthorized" } });
  });

  it("gives up once the stream could no longer be resumed in time, the waits capped", async () => {
    const r = await run(body(chunk(1, "a"), true), []);
    expect(r.ending).toEqual({ kind: "gave-up" });
    expect(r.elapsed).toBeLessThanOrEqual(GIVE_UP_MS);
    expect(r.elapsed).toBeGreaterThan(GIVE_UP_MS - Math.max(...BACKOFF_MS));
    expect(Math.max(...r.waits)).toBe(BACKOFF_MS.at(-1));
    expect(r.waits.slice(0, 5)).toEqual(BACKOFF_MS);
  });

  it("does not resume a stream without a stream id or without event ids", async () => {
    const noIds = await run(body(frame(null, "message_chunk", { content: "x" })), [sse(done(1))]);
    expect(noIds.ending).toEqual({ kind: "dropped" });
    expect(noIds.asked).toEqual([]);
    expect(noIds.events).toEqual(["x"]);
    const noStream = await run(body(chunk(1, "a"), true), [], { streamId: "", lastEventId: 0 });
    expect(noStream.ending).toEqual({ kind: "dropped" });
  });

  it("rejects when aborted while waiting to reconnect", async () => {
    const controller = new AbortController();
    controller.abort(new DOMException("stopped", "AbortError"));
    await expect(run(body(chunk(1, "a"), true), [], undefined, controller.signal)).rejects.toThrow(
      "stopped",
    );
  });

  it("gives up a connection that brings nothing for STALL_MS and resumes from the last event", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    try {
      let clock = 0;
      let sent = false;
      // One event, then silence: a connection lost without an error.
      const silent = new ReadableStream<Uint8Array>({
        pull(c) {
          if (!sent) {
            sent = true;
            c.enqueue(enc.encode(chunk(1, "a")));
          }
          return new Promise(() => {});
        },
      });
      const events: string[] = [];
      const asked: number[] = [];
      const following = follow(
        { streamId: "s1", lastEventId: 0 },
        silent,
        { event: (_e, d) => events.push(String(d.content)), reconnecting() {}, reconnected() {} },
        {
          async resume(_id, after) {
            asked.push(after);
            return sse(chunk(2, "b") + done(3));
          },
          sleep: async () => {},
          now: () => clock,
        },
        new AbortController().signal,
      );
      await vi.advanceTimersByTimeAsync(5_000);
      expect(asked).toEqual([]);
      clock += STALL_MS + 1;
      await vi.advanceTimersByTimeAsync(5_000);
      expect((await following).kind).toBe("end");
      expect(asked).toEqual([1]);
      expect(events.join("")).toBe("ab");
    } finally {
      vi.useRealTimers();
    }
  });
});
