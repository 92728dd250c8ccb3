/**
 * @module What a screen reader hears when an answer ends: the answer read block by block from
 * its rendered view (a code block by its language, not its toolbar's "jsCopy"; a table row by
 * row), and how it ended, so a stopped answer is not announced as if complete.
 */
import type { Turn } from "./store";

const squash = (s: string | null | undefined) => (s ?? "").replace(/\s+/g, " ").trim();

/** One block of a rendered answer as a sentence or so. */
function spokenBlock(block: Element): string {
  if (block.classList.contains("code-block")) {
    const lang = block.querySelector("code")?.dataset.lang ?? "";
    const code = block.querySelector("pre")?.textContent ?? "";
    return `${lang ? `${lang} code` : "Code"}: ${code.trim()}`;
  }
  if (block.classList.contains("table-wrap")) {
    const rows = [...block.querySelectorAll("tr")].map((tr) =>
      [...tr.cells].map((c) => squash(c.textContent)).join(", "),
    );
    return `Table: ${rows.join("; ")}.`;
  }
  if (block.tagName === "UL" || block.tagName === "OL") {
    return [...block.children].map((li) => squash(li.textContent)).join("; ");
  }
  if (block.tagName === "HR") return "";
  return squash(block.textContent);
}

/** The rendered answer `text` (the view's `.answer-text`) as words to read out. */
export function spokenAnswer(text: Element): string {
  return [...text.children]
    .map(spokenBlock)
    .filter((s) => s !== "")
    .join("\n");
}

/** The announcement for `turn`, which has ended, from its rendered answer `text`. */
export function announcement(turn: Turn, text: Element): string {
  const words = spokenAnswer(text);
  switch (turn.state) {
    case "stopped":
      return `You stopped the answer. Magic Box had written: ${words}`;
    case "incomplete":
    case "failed":
      return `The answer is incomplete. ${turn.note} Magic Box had written: ${words}`;
    default:
      // A note on a finished answer says it was cut short (cost cap, length): that comes first.
      return turn.note
        ? `${turn.note} Magic Box had written: ${words}`
        : `Magic Box answered: ${words}`;
  }
}
