/** @module Reads OUR SSE output the way a client would: eventsource-parser, one JSON object per event. */
import { createParser } from "eventsource-parser";

/** One parsed event: the `id:` line, the `event:` name and the `data:` JSON. */
export interface SseEvent {
  id: string | undefined;
  event: string | undefined;
  data: Record<string, unknown>;
}

/** An event stream read one event at a time; `cancel()` cancels the response body itself. */
export interface EventReader {
  /** The next event, or null when the body ended. */
  next(): Promise<SseEvent | null>;
  /** Reads up to the end of the body. */
  rest(): Promise<SseEvent[]>;
  /**
   * Reads what is left of a body whose client is gone: the events, and whether the body closed
   * or was aborted (the session aborts it to drop what a gone client never read).
   */
  untilGone(): Promise<{ events: SseEvent[]; end: "closed" | "errored" }>;
  /** Cancels the body's reader, as a client that goes away does. */
  cancel(): Promise<void>;
}

function toEvent(message: { id?: string; event?: string; data: string }): SseEvent {
  // JSON.parse throws on a frame whose data is not one JSON object: the test fails loudly.
  const data = JSON.parse(message.data) as unknown;
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new Error(`data is not a JSON object: ${message.data}`);
  }
  return { id: message.id, event: message.event, data: data as Record<string, unknown> };
}

/** Every event of a complete SSE text. */
export function parseEvents(text: string): SseEvent[] {
  const events: SseEvent[] = [];
  const parser = createParser({ onEvent: (message) => events.push(toEvent(message)) });
  parser.feed(text);
  parser.reset({ consume: true });
  return events;
}

/** Opens `res.body` for reading events incrementally. */
export function openEvents(res: Response): EventReader {
  if (!res.body) throw new Error("response has no body");
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const queue: SseEvent[] = [];
  let ended = false;
  const parser = createParser({
    onEvent: (message) => queue.push(toEvent(message)),
  });

  const next = async (): Promise<SseEvent | null> => {
    for (;;) {
      const queued = queue.shift();
      if (queued) return queued;
      if (ended) return null;
      const { done, value } = await reader.read();
      if (done) {
        ended = true;
        parser.feed(decoder.decode());
        parser.reset({ consume: true });
      } else {
        parser.feed(decoder.decode(value, { stream: true }));
      }
    }
  };
  return {
    next,
    async rest() {
      const events: SseEvent[] = [];
      for (let e = await next(); e !== null; e = await next()) events.push(e);
      return events;
    },
    async untilGone() {
      const events: SseEvent[] = [];
      try {
        for (let e = await next(); e !== null; e = await next()) events.push(e);
        return { events, end: "closed" as const };
      } catch {
        return { events, end: "errored" as const };
      }
    },
    cancel: () => reader.cancel(),
  };
}

/** Every event of the response, after its body ended. */
export function readEvents(res: Response): Promise<SseEvent[]> {
  return openEvents(res).rest();
}
