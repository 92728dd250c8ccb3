#!/usr/bin/env node
/**
 * Checks the links of README.md and docs/ without the network: every relative link (markdown
 * `[text](path#anchor)`, `![alt](path)` or HTML `src`/`href`) must name a file inside the
 * repository that exists, and every `#anchor` must be a heading of the target file, slugged as
 * GitHub slugs it. Links inside code (fenced blocks, inline code) are not links; http(s) and
 * mailto addresses are not checked. Prints each broken link and exits 1 if there is one.
 *
 * Usage: node scripts/check-links.mjs [file.md ...]   (default: README.md and docs/**\/*.md)
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The markdown files to check: README.md and every .md under docs/. */
function defaultFiles() {
  const files = [join(ROOT, "README.md")];
  const docs = join(ROOT, "docs");
  if (existsSync(docs)) {
    for (const f of readdirSync(docs, { recursive: true })) {
      if (String(f).endsWith(".md")) files.push(join(docs, String(f)));
    }
  }
  return files;
}

/** The text with fenced code blocks blanked out (line numbers kept). */
function withoutFences(text) {
  const lines = text.split("\n");
  let fence = null;
  const out = lines.map((line) => {
    const m = /^\s*(`{3,}|~{3,})/.exec(line);
    if (fence) {
      if (m && m[1][0] === fence[0] && m[1].length >= fence.length) fence = null;
      return "";
    }
    if (m) {
      fence = m[1];
      return "";
    }
    return line;
  });
  return out.join("\n");
}

/** The text with fenced code blocks and inline code blanked out (line numbers kept). */
function withoutCode(text) {
  // Inline code: a run of backticks up to the same run (may span lines within a paragraph).
  return withoutFences(text).replace(/(`+)[\s\S]*?\1/g, (s) => s.replace(/[^\n]/g, " "));
}

/** GitHub's slug of a heading's text (github-slugger): lower case, punctuation out, spaces to -. */
function slug(heading) {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1") // links and images: their text
    .replace(/<[^>]+>/g, "") // inline HTML tags
    .replace(/[*`]/g, "") // emphasis and code marks (GitHub keeps underscores)
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "").replace(/ /g, "-");
}

const anchorCache = new Map();
/** The anchors of a markdown file: its headings' slugs (duplicates numbered) and HTML ids. */
function anchorsOf(file) {
  let anchors = anchorCache.get(file);
  if (anchors) return anchors;
  anchors = new Set();
  const seen = new Map();
  const text = withoutFences(readFileSync(file, "utf8"));
  for (const m of text.matchAll(/^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
    const base = slug(m[1]);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  for (const m of text.matchAll(/\s(?:id|name)="([^"]+)"/g)) anchors.add(m[1]);
  anchorCache.set(file, anchors);
  return anchors;
}

/** Every link target in a markdown text, with its line number. */
function linksOf(text) {
  const found = [];
  const clean = withoutCode(text);
  const lineAt = (index) => clean.slice(0, index).split("\n").length;
  // [text](target "title") and ![alt](target); text may hold one level of brackets.
  for (const m of clean.matchAll(
    /!?\[(?:[^[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g,
  ))
    found.push({ target: m[1], line: lineAt(m.index) });
  for (const m of clean.matchAll(/<(?:img|a|source)\b[^>]*?\s(?:src|href)="([^"]+)"/g))
    found.push({ target: m[1], line: lineAt(m.index) });
  // Reference definitions: [name]: target
  for (const m of clean.matchAll(/^ {0,3}\[[^\]]+\]:\s*(\S+)/gm))
    found.push({ target: m[1], line: lineAt(m.index) });
  return found;
}

/** What is wrong with one link of `file`, or null. */
function problem(file, target) {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return null; // http:, https:, mailto:, ...
  if (target.startsWith("//")) return null;
  const hash = target.indexOf("#");
  const path = decodeURIComponent(hash === -1 ? target : target.slice(0, hash));
  const anchor = hash === -1 ? null : decodeURIComponent(target.slice(hash + 1));
  const dest = path === "" ? file : resolve(dirname(file), path);
  const rel = relative(ROOT, dest);
  if (rel.startsWith(`..${sep}`) || rel === "..") return `points outside the repository`;
  if (!existsSync(dest)) return `no such file: ${rel}`;
  if (anchor === null || anchor === "") return null;
  if (statSync(dest).isDirectory() || !dest.endsWith(".md"))
    return `an anchor into a file that is not markdown: ${rel}`;
  if (!anchorsOf(dest).has(anchor)) return `no heading #${anchor} in ${relative(ROOT, dest)}`;
  return null;
}

const files = process.argv.slice(2).length
  ? process.argv.slice(2).map((f) => resolve(f))
  : defaultFiles();
let checked = 0;
const broken = [];
for (const file of files) {
  for (const { target, line } of linksOf(readFileSync(file, "utf8"))) {
    checked++;
    const why = problem(file, target);
    if (why) broken.push(`${relative(ROOT, file)}:${line}: ${target}: ${why}`);
  }
}
for (const b of broken) console.error(b);
console.log(`check-links: ${files.length} file(s), ${checked} link(s), ${broken.length} broken`);
process.exit(broken.length ? 1 : 0);
