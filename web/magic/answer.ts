/**
 * @module One answer while it streams: events into the turn and its view (rendered once per
 * frame, scrolled along while the reader is at the bottom), the turn saved now and then (never
 * per token), and what the page says while a dropped connection is being restored.
 */
import type { Source } from "./api";
import { type Ending, follow } from "./follow";
import { streamingFigures } from "./outcome";
import type { Turn } from "./store";
import { resumeStream } from "./streams";
import type { TurnView } from "./view";

/** Saving during a stream at most this often (ms): storage writes are synchronous. */
export const SAVE_EVERY_MS = 1000;

/** What an answer needs from the conversation around it. */
export interface AnswerHost {
  conversation: HTMLElement;
  say(text: string): void;
  /** Writes the conversation (with this turn, its answer and its last event id) to storage. */
  save(): void;
}

/** A save at most every `everyMs`, the last change always saved within that time. */
export function throttle(save: () => void, everyMs = SAVE_EVERY_MS) {
  let savedAt = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const now = () => {
    clearTimeout(timer);
    timer = undefined;
    savedAt = Date.now();
    save();
  };
  return {
    now,
    soon() {
      const left = savedAt + everyMs - Date.now();
      if (left <= 0) now();
      else timer ??= setTimeout(now, left);
    },
    cancel() {
      clearTimeout(timer);
      timer = undefined;
    },
  };
}

/** How the answer's stream ended, and whose bearer read it last. */
export interface Followed {
  ending: Ending;
  source: Source;
  /** The reader was at the bottom of the conversation: keep it there. */
  stick: boolean;
}

/**
 * Follows `turn`'s stream into `view`: `body` is the response of the send, or null to resume
 * the stream from the turn's last event id (after a reload). Rejects only when `signal` aborts.
 */
export async function followAnswer(
  turn: Turn,
  view: TurnView,
  body: ReadableStream<Uint8Array> | null,
  source: Source,
  host: AnswerHost,
  signal: AbortSignal,
): Promise<Followed> {
  const c = host.conversation;
  const following = () => c.scrollTop + c.clientHeight >= c.scrollHeight - 80;
  const scrollDown = () => {
    c.scrollTop = c.scrollHeight;
  };
  let stick = true;
  let scrollQueued = false;
  const saver = throttle(host.save);
  let reader = source;
  turn.state = "streaming";
  try {
    const ending = await follow(
      turn,
      body,
      {
        event(event, data) {
          stick = following();
          if (event === "message_chunk" && typeof data.content === "string") {
            turn.answer += data.content;
            streamingFigures(turn, data);
          } else if (event === "reasoning_chunk" && typeof data.content === "string") {
            turn.reasoning += data.content;
          } else return;
          if (turn.note) turn.note = "";
          view.schedule();
          // Once per frame, after the render: many chunks arrive within one frame.
          if (stick && !scrollQueued) {
            scrollQueued = true;
            requestAnimationFrame(() => {
              scrollQueued = false;
              if (stick) scrollDown();
            });
          }
          saver.soon();
        },
        reconnecting(delayMs) {
          turn.note = "The connection dropped; reconnecting to continue this answer…";
          view.render();
          host.say(`The connection dropped; reconnecting in ${Math.ceil(delayMs / 1000)} s…`);
          saver.now();
        },
        reconnected() {
          turn.note = "";
          view.render();
          host.say("Reconnected; the answer continues.");
        },
      },
      {
        async resume(streamId, after, s) {
          const resumed = await resumeStream(streamId, after, s);
          reader = resumed.source;
          return resumed.res;
        },
      },
      signal,
    );
    return { ending, source: reader, stick };
  } finally {
    saver.cancel();
  }
}
