/** @module The page's SSE parser (web/magic/sse.ts) in Node: line ends, multi-line data, comments, any split. */
import { describe, expect, it } from "vitest";
import { createSseParser, type SseEvent } from "../../web/magic/sse";

function parse(pieces: string[]): SseEvent[] {
  const events: SseEvent[] = [];
  const parser = createSseParser((e) => events.push(e));
  for (const piece of pieces) parser.feed(piece);
  return events;
}

/** One stream using every line end, a comment, multi-line data and field edge cases. */
const STREAM =
  ": keep-alive comment\r\n\r\n" +
  'id: 1\r\nevent: message_chunk\r\ndata: {"content":"a"}\r\n\r\n' +
  "id: 2\revent: message_chunk\rdata: line one\rdata: line two\r\r" +
  "id: 3\nevent: done\ndata:no-space\ndata\n\n" +
  "event: ignored-without-data\n\n" +
  "data:  two spaces keep one\n\n" +
  "event: cut\ndata: never dispatched";

const EXPECTED: SseEvent[] = [
  { event: "message_chunk", data: '{"content":"a"}', id: "1" },
  { event: "message_chunk", data: "line one\nline two", id: "2" },
  { event: "done", data: "no-space\n", id: "3" },
  { event: "message", data: " two spaces keep one", id: "3" },
];

describe("createSseParser", () => {
  it("parses CRLF, CR and LF line ends, comments and multi-line data in one piece", () => {
    expect(parse([STREAM])).toEqual(EXPECTED);
  });

  it("gives the same events for every split of the stream into two pieces", () => {
    for (let i = 0; i <= STREAM.length; i++) {
      expect(parse([STREAM.slice(0, i), STREAM.slice(i)]), `split at ${i}`).toEqual(EXPECTED);
    }
  });

  it("gives the same events when fed one character at a time, with empty pieces between", () => {
    expect(parse([...STREAM].flatMap((c) => [c, ""]))).toEqual(EXPECTED);
  });

  it("treats a CR at the end of a piece and an LF at the start of the next as one line end", () => {
    expect(parse(["data: x\r", "\n\r", "\n"])).toEqual([{ event: "message", data: "x", id: "" }]);
    // A CR, then a CR at the start of the next piece, is two line ends: the second dispatches.
    expect(parse(["data: y\r", "\r"])).toEqual([{ event: "message", data: "y", id: "" }]);
  });
});
