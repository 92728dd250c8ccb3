/** @module Reading the stream: a Server-Sent Events parser and a reader that feeds it from a response body. */

/** One dispatched event: its type (`message` when unnamed), its data lines joined, the last id. */
export interface SseEvent {
  event: string;
  data: string;
  id: string;
}

/** What createSseParser returns: feed() takes decoded text in pieces of any size. */
export interface SseParser {
  feed(text: string): void;
}

/**
 * A small Server-Sent Events parser (the WHATWG "interpreting an event stream" rules). Lines
 * may end in CRLF, LF or CR, also when a CRLF is split across two pieces; `:` lines are
 * comments; several `data:` lines join with "\n". An event cut off by the end of the stream
 * (no blank line after it) is never dispatched, so a dropped connection cannot fake a `done`.
 */
export function createSseParser(onEvent: (e: SseEvent) => void): SseParser {
  let pending = "";
  let scanned = 0; // how much of `pending` holds no line end, so it is not scanned twice
  let skipLf = false; // the last piece ended in CR: an LF at the start of the next is its pair
  let data: string[] = [];
  let event = "";
  let lastId = "";

  function line(text: string): void {
    if (text === "") {
      // Blank line: dispatch. An event without data lines is dropped, as the spec says.
      if (data.length > 0)
        onEvent({ event: event || "message", data: data.join("\n"), id: lastId });
      data = [];
      event = "";
      return;
    }
    if (text.charCodeAt(0) === 58 /* ":" */) return;
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.charCodeAt(0) === 32 /* " " */) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "event") event = value;
    else if (field === "id" && !value.includes("\0")) lastId = value;
    // `retry` and unknown fields are ignored: this page does not reconnect by itself.
  }

  return {
    feed(piece: string) {
      let text = piece;
      if (text === "") return;
      if (skipLf) {
        skipLf = false;
        if (text.charCodeAt(0) === 10) text = text.slice(1);
      }
      pending += text;
      let start = 0;
      for (let i = scanned; i < pending.length; i++) {
        const c = pending.charCodeAt(i);
        if (c !== 10 && c !== 13) continue;
        line(pending.slice(start, i));
        if (c === 13) {
          if (i + 1 === pending.length) skipLf = true;
          else if (pending.charCodeAt(i + 1) === 10) i++;
        }
        start = i + 1;
      }
      pending = pending.slice(start);
      scanned = pending.length;
    },
  };
}

/** A JSON object, or null for anything else (the stream's data is never trusted to parse). */
export function parseObject(text: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === "object" && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/** The terminal event of a stream (`done` or `error`) with its data, or null when none came. */
export interface StreamEnd {
  event: "done" | "error";
  data: Record<string, unknown>;
}

/** An event's `id:` as the stream's sequence number, or null when it is not one (no id, not digits). */
export function eventNumber(id: string): number | null {
  return /^\d{1,15}$/.test(id) ? Number(id) : null;
}

/**
 * Reads `body` to its end, calling `onEvent` for each event with JSON object data (with its id
 * as a number, see eventNumber), and stops (cancelling the body) at the first terminal event,
 * which it returns. Null: the stream ended or broke without one, or `cut` aborted (the body is
 * then cancelled). A read error (connection lost, aborted) is thrown to the caller.
 */
export async function readStream(
  body: ReadableStream<Uint8Array>,
  onEvent: (event: string, data: Record<string, unknown>, id: number | null) => void,
  cut?: AbortSignal,
): Promise<StreamEnd | null> {
  let end: StreamEnd | null = null;
  const parser = createSseParser((ev) => {
    const data = parseObject(ev.data);
    if (!data || end) return;
    if (ev.event === "done" || ev.event === "error") end = { event: ev.event, data };
    else onEvent(ev.event, data, eventNumber(ev.id));
  });
  const reader = body.getReader();
  const decoder = new TextDecoder();
  // A pending read resolves as done when the reader is cancelled.
  const cancel = () => void reader.cancel().catch(() => {});
  if (cut?.aborted) cancel();
  cut?.addEventListener("abort", cancel, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parser.feed(decoder.decode(value, { stream: true }));
      if (end) {
        cancel();
        return end;
      }
    }
    parser.feed(decoder.decode());
    return end;
  } finally {
    cut?.removeEventListener("abort", cancel);
  }
}
