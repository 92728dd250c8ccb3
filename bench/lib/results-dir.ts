/**
 * @module Where a bench script writes its results: bench/results/local/ (gitignored) by default,
 * so a try-out never overwrites the committed figures; bench/results/ itself only with
 * `--update-results`; anywhere with `--out <dir>`.
 */
import { join } from "node:path";

/** The committed results, which the README quotes. */
export const COMMITTED_RESULTS = "bench/results";
/** Where a run writes unless told otherwise (gitignored). */
export const LOCAL_RESULTS = "bench/results/local";

/** The directory `argv` asks for, under `root` unless `--out` names one. */
export function resultsDir(argv: readonly string[], root: string): string {
  const i = argv.indexOf("--out");
  const out = i >= 0 ? argv[i + 1] : undefined;
  if (out) return out;
  return join(root, argv.includes("--update-results") ? COMMITTED_RESULTS : LOCAL_RESULTS);
}
