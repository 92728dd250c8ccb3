/**
 * @module One conversation's turns: what a turn holds, reading stored turns back (checked field
 * by field), and the history each send carries, fitted to the stream API's bounds. Where the
 * conversations are kept is chats.ts.
 */
import type { ChatMessage } from "./api";

/** How an answer ended (or that it is still on its way). */
export type TurnState = "sending" | "streaming" | "done" | "stopped" | "incomplete" | "failed";

/** One exchange: the question and the answer as far as it got, with how it ended. */
export interface Turn {
  user: string;
  answer: string;
  reasoning: string;
  state: TurnState;
  /** The sentence shown under an answer that did not end normally (or was cut short). */
  note: string;
  badge: string;
  /** [key, label, value] rows shown under the answer. */
  metrics: [string, string, string][];
  streamId: string;
  /**
   * The id of the last event the answer holds (0: none yet; -1: the stream's events carry no
   * ids, so it cannot be resumed). Saved with the answer, so the two always agree.
   */
  lastEventId: number;
  errorCode: string;
  /** Older messages the model did not see for this turn (they no longer fit the limits). */
  leftOut: number;
}

/** The stream API's bounds on a conversation (its defaults, MAX_MESSAGES and MAX_PROMPT_CHARS). */
export const LIMITS = { maxMessages: 50, maxPromptChars: 32768, maxContentChars: 8192 };

const STATES: TurnState[] = ["sending", "streaming", "done", "stopped", "incomplete", "failed"];

/** A new turn for `user`, waiting for its answer. */
export function newTurn(user: string, leftOut: number): Turn {
  return {
    user,
    answer: "",
    reasoning: "",
    state: "sending",
    note: "",
    badge: "",
    metrics: [],
    streamId: "",
    lastEventId: 0,
    errorCode: "",
    leftOut,
  };
}

const str = (v: unknown, max = 200_000) => (typeof v === "string" ? v.slice(0, max) : "");

/** A stored turn, checked field by field: storage is another tab's or a tamperer's text. */
function readTurn(v: unknown): Turn | null {
  if (!v || typeof v !== "object") return null;
  const o = v as Record<string, unknown>;
  if (typeof o.user !== "string") return null;
  const t = newTurn(str(o.user), typeof o.leftOut === "number" ? o.leftOut : 0);
  t.answer = str(o.answer);
  t.reasoning = str(o.reasoning);
  t.state = STATES.includes(o.state as TurnState) ? (o.state as TurnState) : "done";
  t.note = str(o.note, 1000);
  t.badge = str(o.badge, 40);
  t.streamId = str(o.streamId, 64);
  t.lastEventId =
    Number.isSafeInteger(o.lastEventId) && (o.lastEventId as number) >= -1
      ? (o.lastEventId as number)
      : -1;
  t.errorCode = str(o.errorCode, 64);
  if (Array.isArray(o.metrics))
    t.metrics = o.metrics
      .filter((m): m is unknown[] => Array.isArray(m) && m.length === 3)
      .map((m) => [str(m[0], 40), str(m[1], 40), str(m[2], 80)]);
  // A stream the page was following when it closed stays "streaming": the chat resumes it when
  // it is opened (resumable()). Without a stream id or event ids there is nothing to resume.
  if (t.state === "sending" || (t.state === "streaming" && !resumable(t))) abandon(t);
  return t;
}

/** Marks a turn whose stream the page stopped following when it was closed or reloaded. */
export function abandon(t: Turn): void {
  t.state = t.answer ? "incomplete" : "failed";
  t.badge = t.answer ? "Incomplete" : "Not answered";
  t.note = "The page was closed before this answer finished.";
}

/** True when `turn` was streaming and the server can be asked for the rest of it. */
export function resumable(turn: Turn): boolean {
  return turn.state === "streaming" && turn.streamId !== "" && turn.lastEventId >= 0;
}

/** Stored turns (`{turns: [...]}`), oldest first; what cannot be read is left out. */
export function parseTurns(v: unknown): Turn[] {
  const turns = (v as { turns?: unknown } | null)?.turns;
  if (!Array.isArray(turns)) return [];
  return turns.flatMap((t) => readTurn(t) ?? []);
}

/** Length in code points, as the server counts characters. */
const chars = (s: string) => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

/** `s` cut to at most `max` code points, an ellipsis marking the cut. */
function clip(s: string, max: number): string {
  if (chars(s) <= max) return s;
  return `${[...s].slice(0, max - 1).join("")}…`;
}

/**
 * The messages for a send: each earlier turn that has an answer (a stopped or broken-off one
 * too, as far as it got), then `next`. When they do not fit the bounds, the oldest turns are
 * left out whole, so the conversation still starts with a question; `leftOut` counts the
 * messages dropped. Turns without any answer are not history: nothing was said back.
 */
export function buildMessages(
  turns: Turn[],
  next: string,
  limits = LIMITS,
): { messages: ChatMessage[]; leftOut: number } {
  const pairs: ChatMessage[][] = [];
  for (const t of turns) {
    if (t.answer.trim() === "" || t.user.trim() === "") continue;
    pairs.push([
      { role: "user", content: clip(t.user, limits.maxContentChars) },
      { role: "assistant", content: clip(t.answer, limits.maxContentChars) },
    ]);
  }
  const last: ChatMessage = { role: "user", content: next };
  let count = 1;
  let total = chars(next);
  let kept = 0;
  // Newest first: keep pairs while both bounds still hold.
  for (let i = pairs.length - 1; i >= 0; i--) {
    const pair = pairs[i] as ChatMessage[];
    const size = pair.reduce((n, m) => n + chars(m.content), 0);
    if (count + 2 > limits.maxMessages || total + size > limits.maxPromptChars) break;
    count += 2;
    total += size;
    kept++;
  }
  const messages = [...pairs.slice(pairs.length - kept).flat(), last];
  return { messages, leftOut: (pairs.length - kept) * 2 };
}
