/**
 * @module How an answer ended, in words: the note and badge on the turn, the sentence for the
 * status line, and the figures of a finished answer. Every way a stream can end lands here.
 */
import { ApiError, type Source } from "./api";
import { cutShort, explain, formatMs, formatUsd, LIMIT_TITLE } from "./explain";
import type { Ending } from "./follow";
import type { StreamEnd } from "./sse";
import type { Turn } from "./store";

/** What an outcome tells the rest of the page. */
export interface OutcomeHost {
  say(text: string): void;
  /** A refusal with a wait (limits, quotas, budgets, busy). */
  refused(e: ApiError, sentence: string): void;
  /** A stream ended with `done`. */
  answered(done: Record<string, unknown>, source: Source): void;
}

function end(turn: Turn, state: Turn["state"], note: string, badge: string): void {
  turn.state = state;
  turn.note = note;
  turn.badge = badge;
}

/** The figures of an answer while it streams: what it has cost so far. */
export function streamingFigures(turn: Turn, data: Record<string, unknown>): void {
  turn.metrics = [
    ["tokens", "Tokens", `${Number(data.output_tokens) || 0} out`],
    ["cost", "Cost so far", formatUsd(data.cost_usd)],
  ];
}

/** The stream ended: with `done`, with an `error` event, or (null) without either. */
export function finished(
  turn: Turn,
  outcome: StreamEnd | null,
  source: Source,
  host: OutcomeHost,
): void {
  if (!outcome) {
    end(turn, "incomplete", "The connection dropped before the answer finished.", "Incomplete");
    host.say("The connection dropped; the answer is incomplete.");
    return;
  }
  const d = outcome.data;
  if (outcome.event === "error") {
    const why = typeof d.detail === "string" && d.detail ? ` (${d.detail.replace(/\.$/, "")})` : "";
    const partial = turn.answer !== "";
    const sentence = partial
      ? `The answer broke off because of an error on the server${why}.`
      : `The server could not answer${why}.`;
    end(turn, partial ? "incomplete" : "failed", sentence, partial ? "Incomplete" : "Not answered");
    host.say(sentence);
    return;
  }
  if (typeof d.stream_id === "string") turn.streamId = d.stream_id;
  // Without the provider's own count the server records an upper bound: say so ("at most").
  const bound = d.usage_source === "estimated";
  const cost = bound ? `at most ${formatUsd(d.cost_usd)}` : formatUsd(d.cost_usd);
  turn.metrics = [
    [
      "tokens",
      bound ? "Tokens (at most)" : "Tokens",
      `${d.input_tokens} in · ${d.output_tokens} out`,
    ],
    ["cost", "Cost", cost],
    ["ttft", "First token", formatMs(d.ttft_ms)],
    ["duration", "Total time", formatMs(d.duration_ms)],
    ["model", "Model", String(d.model ?? "")],
  ];
  host.answered(d, source);
  if (d.finish_reason === "stopped") {
    // Stopped on the server (this page's Stop reached it first, or another tab's did).
    end(turn, "stopped", "This answer was stopped before it finished.", "Stopped");
    host.say(`Stopped: ${d.output_tokens} tokens, ${cost}. The partial answer is kept.`);
    return;
  }
  const cut = cutShort(d.finish_reason);
  end(turn, "done", cut, cut ? "Cut short" : "");
  host.say(`Answer complete: ${d.output_tokens} tokens, ${cost}.`);
}

/** Following the stream ended: with its terminal event, or in one of the ways a resume ends. */
export function ended(turn: Turn, ending: Ending, source: Source, host: OutcomeHost): void {
  const partial = turn.answer !== "";
  const broken = (sentence: string, status: string) => {
    end(turn, partial ? "incomplete" : "failed", sentence, partial ? "Incomplete" : "Not answered");
    host.say(status);
  };
  if (ending.kind === "end") finished(turn, ending.end, source, host);
  else if (ending.kind === "dropped") finished(turn, null, source, host);
  else if (ending.kind === "complete") {
    // The server had nothing after the last event shown: the answer is whole.
    end(turn, "done", "", "");
    host.say("Answer complete.");
  } else if (ending.kind === "gone")
    broken(
      "The connection dropped, and the server no longer has the rest of this answer.",
      "The rest of the answer is no longer available; the answer is incomplete.",
    );
  else if (ending.kind === "gave-up")
    broken(
      "The connection dropped and could not be restored in time; the answer is incomplete.",
      "Could not reconnect; the answer is incomplete.",
    );
  else {
    const sentence = explain(ending.error, source);
    broken(sentence, sentence);
  }
}

/** The send failed before or while streaming: stopped, refused, or the connection dropped. */
export function failed(
  turn: Turn,
  e: unknown,
  stopped: boolean,
  source: Source,
  host: OutcomeHost,
): void {
  if (stopped) {
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
    const sentence = explain(e, source);
    end(turn, "failed", sentence, "Not answered");
    turn.errorCode = e.code;
    host.say(sentence);
    if (LIMIT_TITLE[e.code] || (e.status === 503 && e.retryAfter)) host.refused(e, sentence);
  } else {
    // fetch or a read failed: the connection dropped.
    const partial = turn.answer !== "";
    const sentence = partial
      ? "The connection dropped before the answer finished."
      : explain({ code: "network" });
    end(turn, partial ? "incomplete" : "failed", sentence, partial ? "Incomplete" : "Not answered");
    host.say(partial ? "The connection dropped; the answer is incomplete." : sentence);
  }
}
