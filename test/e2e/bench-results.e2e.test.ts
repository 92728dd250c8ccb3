/**
 * @module The bench scripts never overwrite the committed results unless told to, and the README
 * documents every flag and environment variable they read.
 */
import { execFileSync } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { COMMITTED_RESULTS, LOCAL_RESULTS, resultsDir } from "../../bench/lib/results-dir";
import { ROOT } from "./dev-server";

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

  it("has every flag and environment variable the scripts read documented in the README", async () => {
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
    const readme = await readFile(join(ROOT, "README.md"), "utf8");
    const perf = readme.slice(readme.indexOf("## Performance and resilience"));
    expect([...read].filter((f) => !perf.includes(`\`${f}`))).toEqual([]);
  });
});

describe("the README", () => {
  it("points at no file outside the repository", async () => {
    const readme = await readFile(join(ROOT, "README.md"), "utf8");
    expect(readme).not.toMatch(/\]\(\.\.\/|`\.\.\/|\/work\/|shared\/toolchain/);
  });
});
