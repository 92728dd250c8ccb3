/**
 * @module Syntax colours for the code blocks of finished answers. The highlighter is a bundle
 * of its own, fetched the first time a block with a language appears (never for answers
 * without code); its HTML is sanitized down to spans before it replaces the plain text.
 */
import { sanitizeSpans } from "./markdown";

interface Highlighter {
  highlight(code: string, lang: string): string | null;
}

/** Next to the page's bundle; a runtime URL, so esbuild leaves the import to the browser. */
const HIGHLIGHTER = new URL("highlight.bundle.js", import.meta.url).href;
let loading: Promise<Highlighter | null> | null = null;
const colored = new WeakSet<Element>();

/** Colours the code blocks under `root` that have a language, once the highlighter is loaded. */
export function colorCode(root: Element): void {
  const blocks = [...root.querySelectorAll<HTMLElement>("pre > code[data-lang]")].filter(
    (code) => code.dataset.lang && !colored.has(code),
  );
  if (blocks.length === 0) return;
  loading ??= import(HIGHLIGHTER).then(
    (m) => m as Highlighter,
    // Without colours the code still reads; a later block tries again.
    () => {
      loading = null;
      return null;
    },
  );
  void loading.then((h) => {
    if (!h) return;
    for (const code of blocks) {
      // The answer may have been drawn again (or the chat switched) meanwhile.
      if (!code.isConnected || colored.has(code)) continue;
      const html = h.highlight(code.textContent ?? "", code.dataset.lang ?? "");
      colored.add(code);
      if (html !== null) code.replaceChildren(sanitizeSpans(html));
    }
  });
}
