/**
 * @module The open conversation: sends the history with each question, follows the stream into
 * the turn's view (resuming an answer the page was closed in the middle of), records how each
 * answer ended (a stopped or failed one stays, marked), stops an answer on the server too, and
 * asks the last question again (regenerate) or in new words (edit and resend).
 */
import { followAnswer } from "./answer";
import { type ChatMessage, openStream, readApiError, type Source } from "./api";
import { ended, failed, type OutcomeHost, streamingFigures } from "./outcome";
import { announcement } from "./speech";
import { abandon, buildMessages, newTurn, resumable, type Turn } from "./store";
import { stopStream } from "./streams";
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

/** The chat controller for the page. */
export function createChat(host: ChatHost) {
  let turns: Turn[] = [];
  let views: TurnView[] = [];
  let running: AbortController | null = null;
  /** The turn whose answer is streaming, while `running`. */
  let live: Turn | null = null;
  /** The send in flight, if any: settle() waits for it to record how it ended. */
  let inFlight: Promise<unknown> = Promise.resolve();
  let warnedStorage = false;

  const empty = host.conversation.querySelector(".empty");
  const save = () => {
    if (!host.save(turns) && !warnedStorage) {
      warnedStorage = true;
      host.say("This browser did not let the page save the chat; it will be lost on reload.");
    }
  };
  // Leaving or hiding the page mid-answer: keep the answer and its last event id as they are
  // now, so the next load resumes from exactly there.
  const flush = () => {
    if (running) save();
  };
  addEventListener("pagehide", flush);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") flush();
  });
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
    const { messages, leftOut } = buildMessages(turns, message);
    const turn = newTurn(message, leftOut);
    turns.push(turn);
    const view = show(turn);
    scrollDown();
    save();
    host.say(leftOut ? "Sending (the oldest messages are left out)…" : "Sending…");
    return track(run(turn, view, messages));
  }

  function track(work: Promise<Turn>): Promise<Turn> {
    inFlight = work.catch(() => {});
    return work;
  }

  /**
   * Streams `turn`'s answer into `view`: a new stream of `messages`, or (null) the rest of the
   * stream the turn remembers, after a reload. Resolves once the answer has ended, however.
   */
  async function run(turn: Turn, view: TurnView, messages: ChatMessage[] | null): Promise<Turn> {
    const controller = new AbortController();
    running = controller;
    live = turn;
    offerActions();
    host.busy(true);
    let source: Source = "anonymous";
    let stick = true;
    const mine = turns;
    const here = () => mine === turns && turns.includes(turn);
    try {
      let body: ReadableStream<Uint8Array> | null = null;
      if (messages) {
        // The page names the stream: Stop can stop it on the server before the response
        // arrives (a Stop that reaches the server first keeps it from running at all).
        turn.streamId = crypto.randomUUID();
        const sent = await openStream(messages, host.model(), turn.streamId, controller.signal);
        source = sent.source;
        const res = sent.res;
        turn.streamId = res.headers.get("X-Stream-Id") ?? turn.streamId;
        if (!res.ok || !res.body) throw await readApiError(res);
        body = res.body;
        streamingFigures(turn, { output_tokens: 0, cost_usd: 0 });
        host.say("Answering…");
      } else {
        host.say("Resuming the answer where it stopped…");
      }
      turn.state = "streaming";
      view.render();
      // The stream's id is kept from its first moment: a reload now resumes it.
      save();
      const followed = await followAnswer(
        turn,
        view,
        body,
        source,
        { conversation: host.conversation, say: host.say, save: () => here() && save() },
        controller.signal,
      );
      source = followed.source;
      stick = followed.stick;
      if (here()) ended(turn, followed.ending, source, host);
    } catch (e) {
      // Another conversation opened (or this one was deleted) during the stream: nothing to report.
      if (here()) failed(turn, e, controller.signal.aborted, source, host);
    } finally {
      if (running === controller) {
        running = null;
        live = null;
      }
      if (here()) {
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

  /** Stops the answer in flight: the local read, and the stream on the server. */
  function stop(): void {
    if (!running) return;
    const streamId = live?.streamId;
    running.abort();
    if (streamId) void stopStream(streamId);
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
    stop,
    /** Stops an answer in flight and waits until it is recorded (as stopped) and saved. */
    async settle(): Promise<void> {
      stop();
      await inFlight;
    },
    /** Shows `next` (another conversation, or none); call settle() first. */
    open(next: Turn[]) {
      turns = next;
      for (const v of views) v.root.remove();
      views = [];
      if (next.length === 0 && empty) host.conversation.append(empty);
      const last = next.at(-1);
      for (const t of next) if (t !== last && t.state === "streaming") abandon(t);
      for (const t of next) show(t);
      offerActions();
      scrollDown();
      // The page was closed while the last answer streamed: go on with it where it stopped.
      const view = views.at(-1);
      if (last && view && resumable(last)) void track(run(last, view, null));
    },
  };
}
