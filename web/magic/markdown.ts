/**
 * @module Rendering markdown: marked (GFM) to HTML, then DOMPurify with a short allow-list to
 * a DocumentFragment. Model text is hostile: raw HTML in it is shown as text, never parsed;
 * images become links (a remote image would leak the page's address and break the CSP);
 * links keep only http(s) and mailto targets and open with rel="noopener noreferrer nofollow".
 */
import DOMPurify from "dompurify";
import { Marked } from "marked";

/** Every element a rendered answer may contain (the sanitizer drops all others). */
export const ALLOWED_TAGS = [
  "p",
  "br",
  "hr",
  "h1",
  "h2",
  "h3",
  "h4",
  "h5",
  "h6",
  "ul",
  "ol",
  "li",
  "blockquote",
  "pre",
  "code",
  "em",
  "strong",
  "del",
  "a",
  "table",
  "thead",
  "tbody",
  "tr",
  "th",
  "td",
];
const ALLOWED_ATTR = ["href", "title", "align", "start", "data-lang"];
const SAFE_URL = /^(?:https?:|mailto:)/i;

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const marked = new Marked({
  gfm: true,
  // Models write single newlines meaning new lines, as people do in chat.
  breaks: true,
  async: false,
  renderer: {
    // Raw HTML (block or inline) from the model: shown as the text it is.
    html: ({ text }) => escapeHtml(text),
    image: ({ href, text }) =>
      `<a href="${escapeHtml(href)}">${escapeHtml(text ? `Image: ${text}` : href)}</a>`,
    checkbox: ({ checked }) => (checked ? "☑ " : "☐ "),
    code: ({ text, lang }) => {
      const language = (lang ?? "").match(/^[\w+#.-]{1,24}/)?.[0] ?? "";
      return `<pre><code data-lang="${escapeHtml(language)}">${escapeHtml(text)}</code></pre>\n`;
    },
  },
});

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName !== "A") return;
  const href = node.getAttribute("href");
  if (href && SAFE_URL.test(href)) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  } else {
    node.removeAttribute("href");
  }
});

/** `text` (markdown) as sanitized DOM nodes, ready to insert. */
export function renderMarkdown(text: string): DocumentFragment {
  const html = marked.parse(text) as string;
  const fragment = DOMPurify.sanitize(html, {
    ALLOWED_TAGS,
    ALLOWED_ATTR,
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
    ALLOWED_URI_REGEXP: SAFE_URL,
    // Not URLs: without this the sanitizer tests their values against SAFE_URL too.
    ADD_URI_SAFE_ATTR: ["align", "start", "title", "data-lang"],
    RETURN_DOM_FRAGMENT: true,
  });
  // marked puts a newline between blocks; as text nodes they would show in textContent.
  for (const node of [...fragment.childNodes]) {
    if (node.nodeType === Node.TEXT_NODE && node.textContent?.trim() === "") node.remove();
  }
  return fragment;
}

/** The highlighter's HTML as DOM: spans with `hljs-*` classes and text, nothing else survives. */
export function sanitizeSpans(html: string): DocumentFragment {
  const fragment = DOMPurify.sanitize(html, {
    ALLOWED_TAGS: ["span"],
    ALLOWED_ATTR: ["class"],
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
    RETURN_DOM_FRAGMENT: true,
  });
  for (const span of fragment.querySelectorAll("span")) {
    const kept = [...span.classList].filter((c) => /^hljs-[\w-]+$|^[a-z]+_$/.test(c));
    span.className = kept.join(" ");
  }
  return fragment;
}
