/**
 * @module The README and docs/ as the tests read them: the tests that run or check what the
 * documentation shows find its marked blocks (`<!-- example:<name> -->`, `<!-- guide:<name> -->`)
 * in whichever file holds them now, so a block can move between files without a test breaking,
 * and a block kept in two files fails.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { ROOT } from "./dev-server";

/** A documentation file: its path from the repository root and its text. */
export interface Doc {
  file: string;
  text: string;
}

/** README.md, then every markdown file under docs/. */
export async function readDocs(): Promise<Doc[]> {
  const docs = (await readdir(join(ROOT, "docs"), { recursive: true }))
    .filter((f) => f.endsWith(".md"))
    .sort()
    .map((f) => join("docs", f));
  return Promise.all(
    ["README.md", ...docs].map(async (file) => ({
      file,
      text: await readFile(join(ROOT, file), "utf8"),
    })),
  );
}

/** One documentation file's text (`docs/deploy.md`, `README.md`). */
export const readDoc = (file: string) => readFile(join(ROOT, file), "utf8");

/**
 * The body of the fenced block right after `<!-- <kind>:<name> -->` (its language optional, or
 * `lang` when given), found in exactly one of `docs`.
 */
export function markedBlock(docs: Doc[], kind: string, name: string, lang = "\\w*"): string {
  const re = new RegExp(`<!-- ${kind}:${name} -->\\s*\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``);
  const found = docs.flatMap(({ file, text }) => {
    const m = re.exec(text);
    return m?.[1] ? [{ file, body: m[1] }] : [];
  });
  if (found.length !== 1) {
    const where = found.map((f) => f.file).join(", ") || "none";
    throw new Error(`expected one ${kind}:${name} block in README.md and docs/, found: ${where}`);
  }
  return (found[0] as { body: string }).body;
}
