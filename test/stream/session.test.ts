/** @module runSession over stub readers: the session's cancellation and its limits. */
import { describe, expect, it } from "vitest";
import type { UpstreamEvent } from "../../src/stream/providers/provider";
import { runSession } from "../../src/stream/session";
import { sessionOptions } from "../helpers/session";
import { openEvents, readEvents } from "../helpers/sse";
import { delta, openStub, readerOf, upstreamBody } from "../helpers/stubs";

describe("runSession", () => {
  it.each([
    ["a lost connection", [delta("a"), delta("b"), delta("c")], "error"],
    ["a malformed chunk", [delta("a"), delta("b"), delta("c"), "data: {nope\n\n"], "close"],
  ] as const)(
    "forwards every chunk that arrived before %s, then one error",
    async (_, parts, end) => {
      const { stream } = await openStub(upstreamBody([...parts], end));
      const session = runSession(stream, sessionOptions());
      const events = await readEvents(new Response(session.body));
      expect(events.map((e) => e.event)).toEqual([
        "message_chunk",
        "message_chunk",
        "message_chunk",
        "error",
      ]);
      const summary = await session.finished;
      // Cut before a finish, without usage: recorded at the max_tokens bound.
      expect(summary).toMatchObject({
        finishReason: "upstream_error",
        outputTokens: 16_384,
        failedBeforeFirstToken: false,
      });
    },
  );

  it("cancels the upstream when the body is cancelled (stream cancellation reaches the session)", async () => {
    const upstreamAbort = new AbortController();
    let cancelled = false;
    let n = 0;
    const events = new ReadableStream<UpstreamEvent>({
      async pull(controller) {
        await new Promise((r) => setTimeout(r, 5));
        controller.enqueue({ type: "delta", text: `t${n++}` });
      },
      cancel() {
        cancelled = true;
      },
    });
    const session = runSession(
      { provider: "test", events: readerOf(events) },
      sessionOptions({ upstreamAbort }),
    );
    const reader = openEvents(new Response(session.body));
    expect((await reader.next())?.event).toBe("message_chunk");
    await reader.cancel();
    const summary = await session.finished;
    expect(upstreamAbort.signal.aborted).toBe(true);
    expect(upstreamAbort.signal.reason).toBe("client_abort");
    expect(cancelled).toBe(true);
    expect(summary.finishReason).toBe("client_abort");
    expect(summary.outputTokens).toBeGreaterThanOrEqual(1);
  });

  it("ends the body (no terminal frame) when the upstream is aborted for a gone client", async () => {
    const upstreamAbort = new AbortController();
    const events = new ReadableStream<UpstreamEvent>({
      start(controller) {
        controller.enqueue({ type: "delta", text: "first" });
      },
    });
    const session = runSession(
      { provider: "test", events: readerOf(events) },
      sessionOptions({ upstreamAbort }),
    );
    const reader = openEvents(new Response(session.body));
    expect((await reader.next())?.event).toBe("message_chunk");
    upstreamAbort.abort("client_abort");
    expect((await reader.untilGone()).events).toEqual([]);
    expect((await session.finished).finishReason).toBe("client_abort");
  });

  it("drops the frames a gone client never read and ends the body at once", async () => {
    const upstreamAbort = new AbortController();
    // An upstream that has sent 20 tokens and is still open.
    const events = new ReadableStream<UpstreamEvent>({
      start(controller) {
        for (let i = 0; i < 20; i++) controller.enqueue({ type: "delta", text: " word" });
      },
    });
    const session = runSession(
      { provider: "test", events: readerOf(events) },
      sessionOptions({ upstreamAbort }),
    );
    // Nobody reads the body: the session meters all 20 and queues their frames.
    await new Promise((r) => setTimeout(r, 20));
    upstreamAbort.abort("client_abort");
    const summary = await session.finished;
    // No usage and no finish: the upstream may have generated up to max_tokens before the stop
    // reached it, and that is what is recorded (never less than the 20 metered).
    expect(summary).toMatchObject({
      finishReason: "client_abort",
      outputTokens: 16_384,
      usageSource: "estimated",
    });
    // Nothing of the queue is kept for a client that is gone: the body ends at once, without
    // delivering a frame, instead of waiting on a reader.
    const reader = session.body.getReader();
    const read = await reader.read().catch(() => ({ done: true, value: undefined }));
    expect(read).toEqual({ done: true, value: undefined });
  });
});
