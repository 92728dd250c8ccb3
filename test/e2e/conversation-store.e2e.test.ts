/** @module The page's history fitting (web/magic/store.ts) in Node: both bounds, whole turns, code points. */
import { describe, expect, it } from "vitest";
import { buildMessages, newTurn, parseTurns, resumable, type Turn } from "../../web/magic/store";

function answered(user: string, answer: string, state: Turn["state"] = "done"): Turn {
  return { ...newTurn(user, 0), answer, state };
}
const limits = { maxMessages: 7, maxPromptChars: 100, maxContentChars: 20 };

describe("buildMessages", () => {
  it("sends every answered turn in order, then the new question", () => {
    const turns = [answered("q1", "a1"), answered("q2", "a2 partial", "stopped")];
    expect(buildMessages(turns, "q3", limits)).toEqual({
      messages: [
        { role: "user", content: "q1" },
        { role: "assistant", content: "a1" },
        { role: "user", content: "q2" },
        { role: "assistant", content: "a2 partial" },
        { role: "user", content: "q3" },
      ],
      leftOut: 0,
    });
  });

  it("skips turns that got no answer (nothing was said back)", () => {
    const turns = [answered("q1", "a1"), answered("refused", "", "failed"), answered("q2", " \n")];
    expect(buildMessages(turns, "q3", limits).messages.map((m) => m.content)).toEqual([
      "q1",
      "a1",
      "q3",
    ]);
  });

  it("leaves out the oldest whole turns when there are too many messages", () => {
    const turns = ["1", "2", "3", "4"].map((n) => answered(`q${n}`, `a${n}`));
    const { messages, leftOut } = buildMessages(turns, "q5", limits);
    // 7 messages at most: three turns and the question.
    expect(messages.map((m) => m.content)).toEqual(["q2", "a2", "q3", "a3", "q4", "a4", "q5"]);
    expect(leftOut).toBe(2);
  });

  it("leaves out the oldest whole turns when the characters do not fit, counting code points", () => {
    // Each emoji is one character (two UTF-16 units): 10 + 10 per turn.
    const turns = [0, 1, 2, 3, 4].map((i) => answered("🙂".repeat(10), `${i}`.repeat(10)));
    const { messages, leftOut } = buildMessages(turns, "x".repeat(20), {
      ...limits,
      maxMessages: 50,
    });
    expect(messages.length).toBe(9);
    expect(messages[1]?.content).toBe("1".repeat(10));
    expect(leftOut).toBe(2);
  });

  it("clips an answer longer than one message may be, and marks the cut", () => {
    const { messages } = buildMessages([answered("q", "y".repeat(30))], "next", limits);
    expect(messages[1]?.content).toBe(`${"y".repeat(19)}…`);
  });
});

describe("a stored answer that was streaming", () => {
  const stored = (t: Partial<Turn>) =>
    parseTurns(JSON.parse(JSON.stringify({ turns: [{ ...newTurn("q", 0), ...t }] })))[0];

  it("stays streaming, with its stream id and last event id, so the page resumes it", () => {
    const t = stored({ answer: "half", state: "streaming", streamId: "s-1", lastEventId: 7 });
    expect(t).toMatchObject({ state: "streaming", streamId: "s-1", lastEventId: 7 });
    expect(t && resumable(t)).toBe(true);
  });

  it("is marked incomplete when it cannot be resumed (no stream id, no event ids, an older page's)", () => {
    for (const t of [
      stored({ answer: "half", state: "streaming", streamId: "", lastEventId: 3 }),
      stored({ answer: "half", state: "streaming", streamId: "s-1", lastEventId: -1 }),
      stored({ answer: "", state: "sending", streamId: "s-1", lastEventId: 0 }),
    ])
      expect(t?.state).toMatch(/^(incomplete|failed)$/);
    const older = parseTurns({
      turns: [{ user: "q", answer: "a", state: "streaming", streamId: "s" }],
    });
    expect(older[0]?.state).toBe("incomplete");
  });
});
