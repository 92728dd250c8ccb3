/**
 * @module The bench scripts never overwrite the committed results unless told to, and
 * docs/performance.md documents every flag and environment variable they read.
 */
import { execFileSync } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { COMMITTED_RESULTS, LOCAL_RESULTS, resultsDir } from "../../bench/lib/results-dir";
import { ROOT } from "./dev-server";
import { readDoc, readDocs } from "./docs";

/** Every bench source file (the scripts, their phases and helpers). */
async function benchSources(): Promise<{ file: string; text: string }[]> {
  const entries = await readdir(join(ROOT, "bench"), { recursive: true });
  const files = entries.filter((f) => f.endsWith(".ts") && !f.startsWith("results"));
  return Promise.all(
    files.map(async (f) => ({ file: f, text: await readFile(join(ROOT, "bench", f), "utf8") })),
  );
}

describe("bench results", () => {
  it("go to the gitignored bench/results/local/ unless --update-results or --out says otherwise", () => {
    expect(resultsDir(["--quick"], "/repo")).toBe(`/repo/${LOCAL_RESULTS}`);
    expect(resultsDir(["--quick", "--update-results"], "/repo")).toBe(`/repo/${COMMITTED_RESULTS}`);
    expect(resultsDir(["--out", "/tmp/b", "--update-results"], "/repo")).toBe("/tmp/b");
    const ignored = execFileSync("git", ["check-ignore", `${LOCAL_RESULTS}/latest.json`], {
      cwd: ROOT,
      encoding: "utf8",
    });
    expect(ignored.trim()).toBe(`${LOCAL_RESULTS}/latest.json`);
  });

  it("are written only through resultsDir: no script writes a path of bench/results itself", async () => {
    const offenders = (await benchSources())
      .filter(({ file, text }) => file !== "lib/results-dir.ts" && /["'`]bench\/results/.test(text))
      .map(({ file }) => file);
    expect(offenders).toEqual([]);
  });

  it("has every flag and environment variable the scripts read documented in docs/performance.md", async () => {
    const read = new Set<string>();
    for (const { text } of await benchSources()) {
      for (const m of text.matchAll(/(?:includes|indexOf|flag)\("(--[a-z-]+)"/g))
        read.add(m[1] as string);
      for (const m of text.matchAll(/process\.env\.((?:BENCH|LEDGER_BENCH)_[A-Z_]+)/g))
        read.add(m[1] as string);
    }
    // Set by bench/run.mjs for the scripts, not by the user.
    read.delete("BENCH_BUILD_DIR");
    read.delete("BENCH_ROOT");
    expect(read.size).toBeGreaterThan(15);
    const perf = await readDoc("docs/performance.md");
    expect([...read].filter((f) => !perf.includes(`\`${f}`))).toEqual([]);
  });
});

describe("the README and docs/", () => {
  it("point at no file outside the repository", async () => {
    for (const { file, text } of await readDocs()) {
      expect(text, file).not.toMatch(/`\.\.\/|\/work\/|shared\/toolchain/);
      // A relative link climbs out of docs/ to the root at most, never out of the repository.
      expect(text, file).not.toMatch(file === "README.md" ? /\]\(\.\.\// : /\]\(\.\.\/\.\.\//);
    }
  });

  it("have no broken relative link or anchor (scripts/check-links.mjs)", () => {
    const out = execFileSync(process.execPath, ["scripts/check-links.mjs"], {
      cwd: ROOT,
      encoding: "utf8",
    });
    expect(out).toMatch(/, 0 broken$/m);
  });
});
