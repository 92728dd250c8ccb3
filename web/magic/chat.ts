/**
 * @module The conversation: sends the history with each question, follows the stream into the
 * turn's view, and records how each answer ended (a stopped or failed one stays, marked).
 */
import { ApiError, openStream, readApiError, type Source } from "./api";
import { cutShort, explain, formatMs, formatUsd, LIMIT_TITLE } from "./explain";
import { announcement } from "./speech";
import { readStream, type StreamEnd } from "./sse";
import {
  buildMessages,
  clearConversation,
  loadConversation,
  newTurn,
  saveConversation,
  type Turn,
} from "./store";
import { type Copier, createTurnView, type TurnView } from "./view";

/** What the conversation needs from the rest of the page. */
export interface ChatHost {
  conversation: HTMLElement;
  copy: Copier;
  /** The model to ask ("" for the server's default). */
  model(): string;
  say(text: string): void;
  /** A refusal with a wait (limits, quotas, budgets, busy). */
  refused(e: ApiError, sentence: string): void;
  /** A stream ended with `done`. */
  answered(done: Record<string, unknown>, source: Source): void;
  /** Announces a finished answer to screen readers. */
  announce(text: string): void;
  /** Called when a stream starts or ends, to update the buttons. */
  busy(running: boolean): void;
}

/** Saving during a stream at most this often (ms): storage writes are synchronous. */
const SAVE_EVERY_MS = 1000;

/** The chat controller for the page. */
export function createChat(host: ChatHost) {
  const turns: Turn[] = loadConversation();
  const views: TurnView[] = [];
  let running: AbortController | null = null;
  let savedAt = 0;
  let warnedStorage = false;

  const empty = host.conversation.querySelector(".empty");
  const save = () => {
    savedAt = Date.now();
    if (!saveConversation(turns) && !warnedStorage) {
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

  function show(turn: Turn): TurnView {
    empty?.remove();
    const view = createTurnView(turn, host.copy);
    views.push(view);
    host.conversation.append(view.root);
    return view;
  }
  for (const t of turns) show(t);
  scrollDown();

  function end(turn: Turn, state: Turn["state"], note: string, badge: string): void {
    turn.state = state;
    turn.note = note;
    turn.badge = badge;
  }

  function finishStream(turn: Turn, outcome: StreamEnd | null, source: Source): void {
    if (!outcome) {
      end(turn, "incomplete", "The connection dropped before the answer finished.", "Incomplete");
      host.say("The connection dropped; the answer is incomplete.");
      return;
    }
    const d = outcome.data;
    if (outcome.event === "error") {
      const why =
        typeof d.detail === "string" && d.detail ? ` (${d.detail.replace(/\.$/, "")})` : "";
      const partial = turn.answer !== "";
      const sentence = partial
        ? `The answer broke off because of an error on the server${why}.`
        : `The server could not answer${why}.`;
      end(
        turn,
        partial ? "incomplete" : "failed",
        sentence,
        partial ? "Incomplete" : "Not answered",
      );
      host.say(sentence);
      return;
    }
    if (typeof d.stream_id === "string") turn.streamId = d.stream_id;
    turn.metrics = [
      ["tokens", "Tokens", `${d.input_tokens} in · ${d.output_tokens} out`],
      ["cost", "Cost", formatUsd(d.cost_usd)],
      ["ttft", "First token", formatMs(d.ttft_ms)],
      ["duration", "Total time", formatMs(d.duration_ms)],
      ["model", "Model", String(d.model ?? "")],
    ];
    const cut = cutShort(d.finish_reason);
    end(turn, "done", cut, cut ? "Cut short" : "");
    host.answered(d, source);
    host.say(`Answer complete: ${d.output_tokens} tokens, ${formatUsd(d.cost_usd)}.`);
  }

  function failBeforeStream(turn: Turn, e: ApiError, source: Source): void {
    const sentence = explain(e, source);
    end(turn, "failed", sentence, "Not answered");
    turn.errorCode = e.code;
    host.say(sentence);
    if (LIMIT_TITLE[e.code] || (e.status === 503 && e.retryAfter)) host.refused(e, sentence);
  }

  /** Sends `message` with the history; resolves with its turn once the answer has ended, however. */
  async function send(message: string): Promise<Turn> {
    const { messages, leftOut } = buildMessages(turns, message);
    const turn = newTurn(message, leftOut);
    turns.push(turn);
    const view = show(turn);
    scrollDown();
    save();
    const controller = new AbortController();
    running = controller;
    host.busy(true);
    host.say(leftOut ? "Sending (the oldest messages are left out)…" : "Sending…");
    let source: Source = "anonymous";
    let stick = true;
    let scrollQueued = false;
    try {
      const sent = await openStream(messages, host.model(), controller.signal);
      source = sent.source;
      const res = sent.res;
      turn.streamId = res.headers.get("X-Stream-Id") ?? "";
      if (!res.ok || !res.body) throw await readApiError(res);
      turn.state = "streaming";
      turn.metrics = [["cost", "Cost so far", formatUsd(0)]];
      view.render();
      host.say("Answering…");
      const outcome = await readStream(res.body, (event, data) => {
        stick = following();
        if (event === "message_chunk" && typeof data.content === "string") {
          turn.answer += data.content;
          turn.metrics = [
            ["tokens", "Tokens", `${Number(data.output_tokens) || 0} out`],
            ["cost", "Cost so far", formatUsd(data.cost_usd)],
          ];
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
      finishStream(turn, outcome, source);
    } catch (e) {
      if (!turns.includes(turn)) {
        // New chat stopped this answer and dropped its turn: nothing left to report.
      } else if (controller.signal.aborted) {
        end(
          turn,
          "stopped",
          turn.answer
            ? "You stopped this answer before it finished."
            : "Stopped before the answer started.",
          "Stopped",
        );
        host.say("Stopped. The partial answer is kept.");
      } else if (e instanceof ApiError) {
        failBeforeStream(turn, e, source);
      } else {
        // fetch or a read failed: the connection dropped.
        const partial = turn.answer !== "";
        end(
          turn,
          partial ? "incomplete" : "failed",
          partial
            ? "The connection dropped before the answer finished."
            : explain({ code: "network" }),
          partial ? "Incomplete" : "Not answered",
        );
        host.say(
          partial
            ? "The connection dropped; the answer is incomplete."
            : explain({ code: "network" }),
        );
      }
    } finally {
      if (running === controller) running = null;
      // A New chat during the stream has dropped this turn: nothing to save or show.
      if (turns.includes(turn)) {
        view.render();
        save();
        const text = view.root.querySelector(".answer-text");
        if (turn.answer && text) host.announce(announcement(turn, text));
        if (stick) scrollDown();
      }
      host.busy(false);
    }
    return turn;
  }

  return {
    send,
    get running() {
      return running !== null;
    },
    get turns(): readonly Turn[] {
      return turns;
    },
    stop() {
      running?.abort();
    },
    /** Forgets the conversation (stopping an answer in flight) and shows the empty page. */
    newChat() {
      running?.abort();
      turns.length = 0;
      for (const v of views.splice(0)) v.root.remove();
      clearConversation();
      if (empty) host.conversation.append(empty);
    },
  };
}
