/**
 * @module The view of one turn: the question, the answer rendered as markdown (again on each
 * animation frame while it streams, never per token), the collapsed reasoning, copy buttons on
 * the answer and on each code block, how the answer ended and its figures in one line. The
 * last turn offers Regenerate and Edit. Text only reaches the DOM as Text nodes or through
 * the sanitizer.
 */
import { type Copier, copyButton, el, enhance, wordButton } from "./blocks";
import { colorCode } from "./code-colors";
import { createFigures } from "./figures";
import { renderMarkdown } from "./markdown";
import type { Turn } from "./store";

export type { Copier } from "./blocks";

/** What the last turn's own buttons do. */
export interface TurnActions {
  regenerate(): void;
  edit(): void;
}

/** The DOM of one turn, kept in step with its Turn by render(). */
export interface TurnView {
  readonly root: HTMLElement;
  /** Renders everything now (answer, reasoning, state, note, figures). */
  render(): void;
  /** Renders on the next animation frame; many calls in one frame render once. */
  schedule(): void;
  /** Shows or hides Regenerate and Edit (the last turn's, while nothing streams). */
  offer(on: boolean): void;
}

/** Builds the view of `turn`; `copy` handles the copy buttons, `actions` the last turn's. */
export function createTurnView(turn: Turn, copy: Copier, actions: TurnActions): TurnView {
  const root = el("article", "turn");
  const context = el("p", "context-note");
  const you = el("div", "you-row");
  const question = el("p", "you");
  question.append(el("span", "sr-only", "You: "), el("span", "you-text", turn.user));
  const edit = wordButton("edit", "Edit", "your last question");
  edit.addEventListener("click", () => actions.edit());
  you.append(question, edit);
  const answer = el("div", "answer");
  const head = el("div", "answer-head");
  const badge = el("span", "badge");
  const regenerate = wordButton("regenerate", "Regenerate", "the last answer");
  regenerate.addEventListener("click", () => actions.regenerate());
  const copyAnswer = copyButton("answer", copy, () => turn.answer, "Answer");
  head.append(el("span", "who", "Magic Box"), badge, regenerate, copyAnswer);
  const reasoning = el("details", "reasoning");
  const summary = el("summary", "", "Reasoning");
  const reasoningText = el("div", "reasoning-text");
  reasoning.append(summary, reasoningText);
  const text = el("div", "answer-text");
  const note = el("p", "note");
  const figures = createFigures();
  answer.append(head, reasoning, text, note, figures.root);
  root.append(context, you, answer);

  let frame = 0;
  let shownAnswer: string | null = null;
  let offered = false;

  const view: TurnView = {
    root,
    render() {
      cancelAnimationFrame(frame);
      frame = 0;
      root.dataset.state = turn.state;
      if (turn.streamId) root.dataset.streamId = turn.streamId;
      if (turn.errorCode) root.dataset.errorCode = turn.errorCode;
      const live = turn.state === "sending" || turn.state === "streaming";
      if (live) answer.setAttribute("aria-busy", "true");
      else answer.removeAttribute("aria-busy");
      context.hidden = turn.leftOut === 0;
      context.textContent =
        turn.leftOut === 0
          ? ""
          : `The ${turn.leftOut} oldest messages of this chat no longer fit the limits of one request, so the model did not see them for this question.`;
      if (shownAnswer !== turn.answer) {
        shownAnswer = turn.answer;
        const fragment = renderMarkdown(turn.answer);
        enhance(fragment, copy);
        text.replaceChildren(fragment);
      }
      // Colours once the answer stands still: a streaming block is drawn again every frame.
      if (!live) colorCode(text);
      reasoning.hidden = turn.reasoning === "";
      if (reasoningText.textContent !== turn.reasoning) reasoningText.textContent = turn.reasoning;
      summary.textContent = live && turn.answer === "" ? "Reasoning…" : "Reasoning";
      badge.hidden = turn.badge === "";
      badge.textContent = turn.badge;
      copyAnswer.hidden = live || turn.answer === "";
      regenerate.hidden = !offered || live;
      edit.hidden = !offered || live;
      note.hidden = turn.note === "";
      note.textContent = turn.note;
      figures.render(turn.metrics, live);
    },
    schedule() {
      frame ||= requestAnimationFrame(() => view.render());
    },
    offer(on) {
      offered = on;
      regenerate.hidden = !on;
      edit.hidden = !on;
    },
  };
  view.render();
  return view;
}
