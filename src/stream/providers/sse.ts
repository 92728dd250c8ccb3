/** @module Reads an upstream's SSE body as batches of UpstreamEvents, whatever the protocol inside. */
import { createParser, type EventSourceMessage } from "eventsource-parser";
import type { UpstreamEvent, UpstreamReader } from "./provider";

/** A single SSE event from the upstream may not exceed this. */
const MAX_UPSTREAM_EVENT_BYTES = 256 * 1024;

/**
 * An upstream's SSE body as batches of UpstreamEvents, `onMessage` turning each SSE message into
 * events: each read returns what the next body chunks that carried any events said. A body that
 * ends before `complete()` is true was cut short. A failure (a
 * lost connection, a malformed chunk, a stream cut short) is thrown only after the events that
 * arrived before it were returned, so no token the upstream did send is dropped.
 */
export function sseEvents(
  body: ReadableStream<Uint8Array>,
  onMessage: (message: EventSourceMessage, batch: UpstreamEvent[]) => void,
  complete: () => boolean,
): UpstreamReader {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let batch: UpstreamEvent[] = [];
  let failure: unknown = null;
  let ended = false;
  let cancelled = false;
  const parser = createParser({
    maxBufferSize: MAX_UPSTREAM_EVENT_BYTES,
    onEvent: (message) => onMessage(message, batch),
    // An oversized event ends the stream; other parse errors (an unknown field, a bad retry)
    // are ignored, as the SSE specification says.
    onError: (error) => {
      if (error.type === "max-buffer-size-exceeded") throw error;
    },
  });
  const feed = (text: string) => {
    try {
      parser.feed(text);
    } catch (e) {
      failure = e;
    }
  };
  return {
    async read() {
      for (;;) {
        if (cancelled) return null;
        if (batch.length > 0) {
          const out = batch;
          batch = [];
          return out;
        }
        if (failure !== null) {
          await reader.cancel().catch(() => {});
          throw failure;
        }
        if (ended) return null;
        let read: ReadableStreamReadResult<Uint8Array>;
        try {
          read = await reader.read();
        } catch (e) {
          failure ??= e;
          continue;
        }
        if (read.done) {
          ended = true;
          feed(decoder.decode());
          if (!complete() && failure === null) failure = new Error("upstream stream ended early");
        } else {
          feed(decoder.decode(read.value, { stream: true }));
        }
      }
    },
    async cancel(reason) {
      cancelled = true;
      await reader.cancel(reason).catch(() => {});
    },
  };
}
