/**
 * @module The view of one turn: the question, the answer rendered as markdown (again on each
 * animation frame while it streams, never per token), the collapsed reasoning, copy buttons on
 * the answer and on each code block, and how the answer ended. Text only reaches the DOM as
 * Text nodes or through the sanitizer.
 */
import { renderMarkdown } from "./markdown";
import type { Turn } from "./store";

/** Puts text on the clipboard and says so; the caller passes what the text is ("Code"). */
export type Copier = (text: string, what: string) => Promise<boolean>;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = "",
  text = "",
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

/**
 * A Copy button for `what` ("js code"): the visible word and the rest of the name are one
 * text, so the name always starts with what is shown ("Copy", then "Copied"; WCAG 2.5.3).
 */
function copyButton(what: string, copy: Copier, text: () => string, kind: string) {
  const button = el("button", "copy");
  button.type = "button";
  const word = el("span", "copy-word", "Copy");
  button.append(word, el("span", "sr-only", ` ${what}`));
  let reset = 0;
  button.addEventListener("click", async () => {
    if (!(await copy(text(), kind))) return;
    word.textContent = "Copied";
    clearTimeout(reset);
    reset = window.setTimeout(() => {
      word.textContent = "Copy";
    }, 1500);
  });
  return button;
}

/** Makes `box`, which scrolls sideways, a named stop for the keyboard (WCAG 2.1.1). */
function scroller(box: HTMLElement, name: string): void {
  box.tabIndex = 0;
  box.setAttribute("role", "region");
  box.setAttribute("aria-label", name);
}

/**
 * Adds a toolbar with the language and a Copy button to each code block, and lets tables
 * scroll; both scroll by keyboard too (Safari does not focus a scroller by itself).
 */
function enhance(root: DocumentFragment, copy: Copier): void {
  for (const pre of root.querySelectorAll("pre")) {
    const code = pre.querySelector("code");
    const lang = code?.dataset.lang ?? "";
    const what = lang ? `${lang} code` : "code";
    const box = el("div", "code-block");
    const bar = el("div", "code-bar");
    // The bar repeats what the region's name says: read once, not twice.
    bar.append(el("span", "code-lang", lang || "code"));
    bar.firstElementChild?.setAttribute("aria-hidden", "true");
    bar.append(copyButton(what, copy, () => code?.textContent ?? pre.textContent ?? "", "Code"));
    scroller(pre, lang ? `${lang} code` : "Code");
    pre.replaceWith(box);
    box.append(bar, pre);
  }
  for (const table of root.querySelectorAll("table")) {
    const wrap = el("div", "table-wrap");
    const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent?.trim());
    scroller(wrap, heads.length ? `Table: ${heads.join(", ")}` : "Table");
    table.replaceWith(wrap);
    wrap.append(table);
  }
}

/** The DOM of one turn, kept in step with its Turn by render(). */
export interface TurnView {
  readonly root: HTMLElement;
  /** Renders everything now (answer, reasoning, state, note, metrics). */
  render(): void;
  /** Renders on the next animation frame; many calls in one frame render once. */
  schedule(): void;
}

/** Builds the view of `turn`; `copy` handles the copy buttons. */
export function createTurnView(turn: Turn, copy: Copier): TurnView {
  const root = el("article", "turn");
  const context = el("p", "context-note");
  const you = el("p", "you");
  you.append(el("span", "sr-only", "You: "), el("span", "you-text", turn.user));
  const answer = el("div", "answer");
  const head = el("div", "answer-head");
  const badge = el("span", "badge");
  const copyAnswer = copyButton("answer", copy, () => turn.answer, "Answer");
  head.append(el("span", "who", "Magic Box"), badge, copyAnswer);
  const reasoning = el("details", "reasoning");
  const summary = el("summary", "", "Reasoning");
  const reasoningText = el("div", "reasoning-text");
  reasoning.append(summary, reasoningText);
  const text = el("div", "answer-text");
  const note = el("p", "note");
  const metrics = el("dl", "metrics");
  answer.append(head, reasoning, text, note, metrics);
  root.append(context, you, answer);

  let frame = 0;
  let shownAnswer: string | null = null;

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
      reasoning.hidden = turn.reasoning === "";
      if (reasoningText.textContent !== turn.reasoning) reasoningText.textContent = turn.reasoning;
      summary.textContent = live && turn.answer === "" ? "Reasoning…" : "Reasoning";
      badge.hidden = turn.badge === "";
      badge.textContent = turn.badge;
      copyAnswer.hidden = live || turn.answer === "";
      note.hidden = turn.note === "";
      note.textContent = turn.note;
      metrics.replaceChildren();
      for (const [key, label, value] of turn.metrics) {
        // A <div> per pair (allowed in <dl>) keeps each label with its value when lines wrap.
        const pair = el("div");
        const dd = el("dd", "", value);
        dd.dataset.metric = key;
        pair.append(el("dt", "", label), dd);
        metrics.append(pair);
      }
    },
    schedule() {
      frame ||= requestAnimationFrame(() => view.render());
    },
  };
  view.render();
  return view;
}
