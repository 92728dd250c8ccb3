/**
 * @module The parts of an answer the page adds around the sanitized markdown: a toolbar with
 * the language and a Copy button on each code block, a scrolling box around each table, and
 * the small labelled buttons the turn uses.
 */

/** Puts text on the clipboard and says so; the caller passes what the text is ("Code"). */
export type Copier = (text: string, what: string) => Promise<boolean>;

/** An element with a class and text. */
export function el<K extends keyof HTMLElementTagNameMap>(
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
 * A button that shows `word` and is named `word` + `rest` ("Copy" + "js code"): the visible
 * word starts the name, as WCAG 2.5.3 asks, and the rest tells it apart from its neighbours.
 */
export function wordButton(className: string, word: string, rest: string): HTMLButtonElement {
  const button = el("button", className);
  button.type = "button";
  button.append(el("span", "word", word), el("span", "sr-only", ` ${rest}`));
  return button;
}

/** A Copy button for `what` ("js code"); it reads "Copied" for a moment after copying. */
export function copyButton(what: string, copy: Copier, text: () => string, kind: string) {
  const button = wordButton("copy", "Copy", what);
  const word = button.firstElementChild as HTMLElement;
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
export function enhance(root: DocumentFragment, copy: Copier): void {
  for (const pre of root.querySelectorAll("pre")) {
    const code = pre.querySelector("code");
    const lang = code?.dataset.lang ?? "";
    const box = el("div", "code-block");
    const bar = el("div", "code-bar");
    // The bar repeats what the region's name says: read once, not twice.
    const label = el("span", "code-lang", lang || "code");
    label.setAttribute("aria-hidden", "true");
    bar.append(
      label,
      copyButton(lang ? `${lang} code` : "code", copy, () => code?.textContent ?? "", "Code"),
    );
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
