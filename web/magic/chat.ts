/**
 * @module The open conversation: sends the history with each question, follows the stream into
 * the turn's view, records how each answer ended (a stopped or failed one stays, marked), and
 * asks the last question again (regenerate) or in new words (edit and resend).
 */
import { openStream, readApiError, type Source } from "./api";
import { failed, finished, type OutcomeHost, streamingFigures } from "./outcome";
import { announcement } from "./speech";
import { readStream } from "./sse";
import { buildMessages, newTurn, type Turn } from "./store";
import { type Copier, createTurnView, type TurnView } from "./view";

/** What the conversation needs from the rest of the page. */
export interface ChatHost extends OutcomeHost {
  conversation: HTMLElement;
  copy: Copier;
  /** The model to ask ("" for the server's default). */
  model(): string;
  /** Keeps the conversation; false when storage refused it. */
  save(turns: Turn[]): boolean;
  /** Announces a finished answer to screen readers. */
  announce(text: string): void;
  /** Called when a stream starts or ends, to update the buttons. */
  busy(running: boolean): void;
  /** The person wants to change their last question: `text` goes back into the message box. */
  edit(text: string): void;
}

/** Saving during a stream at most this often (ms): storage writes are synchronous. */
const SAVE_EVERY_MS = 1000;

/** The chat controller for the page. */
export function createChat(host: ChatHost) {
  let turns: Turn[] = [];
  let views: TurnView[] = [];
  let running: AbortController | null = null;
  /** The send in flight, if any: settle() waits for it to record how it ended. */
  let inFlight: Promise<unknown> = Promise.resolve();
  let savedAt = 0;
  let warnedStorage = false;

  const empty = host.conversation.querySelector(".empty");
  const save = () => {
    savedAt = Date.now();
    if (!host.save(turns) && !warnedStorage) {
      warnedStorage = true;
      host.say("This browser did not let the page save the chat; it will be lost on reload.");
    }
  };
  const following = () => {
    const c = host.conversation;
    return c.scrollTop + c.clientHeight >= c.scrollHeight - 80;
  };
  const scrollDown = () => {
    host.conversation.scrollTop = host.conversation.scrollHeight;
  };
  /** Only the last turn, and only while nothing streams, offers Regenerate and Edit. */
  const offerActions = () => {
    views.forEach((v, i) => {
      v.offer(i === views.length - 1 && running === null);
    });
  };

  function show(turn: Turn): TurnView {
    empty?.remove();
    const view = createTurnView(turn, host.copy, {
      regenerate: () => void regenerate(),
      edit: () => host.edit(turn.user),
    });
    views.push(view);
    host.conversation.append(view.root);
    return view;
  }

  /** Takes the last turn away (before it is asked again); resolves with its question. */
  function dropLast(): Turn | undefined {
    const turn = turns.pop();
    views.pop()?.root.remove();
    return turn;
  }

  /** Sends `message` with the history; resolves with its turn once the answer has ended, however. */
  function send(message: string): Promise<Turn> {
    const work = sendNow(message);
    inFlight = work.catch(() => {});
    return work;
  }

  async function sendNow(message: string): Promise<Turn> {
    const { messages, leftOut } = buildMessages(turns, message);
    const turn = newTurn(message, leftOut);
    turns.push(turn);
    const view = show(turn);
    scrollDown();
    save();
    const controller = new AbortController();
    running = controller;
    offerActions();
    host.busy(true);
    host.say(leftOut ? "Sending (the oldest messages are left out)…" : "Sending…");
    let source: Source = "anonymous";
    let stick = true;
    let scrollQueued = false;
    const mine = turns;
    try {
      const sent = await openStream(messages, host.model(), controller.signal);
      source = sent.source;
      const res = sent.res;
      turn.streamId = res.headers.get("X-Stream-Id") ?? "";
      if (!res.ok || !res.body) throw await readApiError(res);
      turn.state = "streaming";
      streamingFigures(turn, { output_tokens: 0, cost_usd: 0 });
      view.render();
      host.say("Answering…");
      const outcome = await readStream(res.body, (event, data) => {
        stick = following();
        if (event === "message_chunk" && typeof data.content === "string") {
          turn.answer += data.content;
          streamingFigures(turn, data);
        } else if (event === "reasoning_chunk" && typeof data.content === "string") {
          turn.reasoning += data.content;
        } else return;
        view.schedule();
        // Once per frame, after the render: many chunks arrive within one frame.
        if (stick && !scrollQueued) {
          scrollQueued = true;
          requestAnimationFrame(() => {
            scrollQueued = false;
            if (stick) scrollDown();
          });
        }
        if (Date.now() - savedAt > SAVE_EVERY_MS) save();
      });
      finished(turn, outcome, source, host);
    } catch (e) {
      // Another conversation opened (or this one was deleted) during the stream: nothing to report.
      if (mine === turns && turns.includes(turn))
        failed(turn, e, controller.signal.aborted, source, host);
    } finally {
      if (running === controller) running = null;
      if (mine === turns && turns.includes(turn)) {
        view.render();
        save();
        const text = view.root.querySelector(".answer-text");
        if (turn.answer && text) host.announce(announcement(turn, text));
        if (stick) scrollDown();
      }
      offerActions();
      host.busy(false);
    }
    return turn;
  }

  /** Asks the last question again, in place of its answer. */
  async function regenerate(): Promise<Turn | null> {
    if (running) return null;
    const last = dropLast();
    return last ? send(last.user) : null;
  }

  return {
    send,
    regenerate,
    /** Asks `message` in place of the last question and its answer. */
    resend(message: string): Promise<Turn> {
      if (!running) dropLast();
      return send(message);
    },
    get running() {
      return running !== null;
    },
    get turns(): readonly Turn[] {
      return turns;
    },
    stop() {
      running?.abort();
    },
    /** Stops an answer in flight and waits until it is recorded (as stopped) and saved. */
    async settle(): Promise<void> {
      running?.abort();
      await inFlight;
    },
    /** Shows `next` (another conversation, or none); call settle() first. */
    open(next: Turn[]) {
      turns = next;
      for (const v of views) v.root.remove();
      views = [];
      if (next.length === 0 && empty) host.conversation.append(empty);
      for (const t of next) show(t);
      offerActions();
      scrollDown();
    },
  };
}
