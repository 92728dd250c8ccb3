/** @module Paired differences of two targets' per-round figures, as quartiles: drift in the machine's load cancels. */
import { completed } from "../lib/client";
import { round } from "../lib/stats";
import { type BenchTarget, SHORT, send, shuffle } from "./common";

/** The 25th, 50th and 75th percentiles of `xs` (nearest rank), with their count. */
export function quartiles(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) =>
    s.length === 0 ? null : round(s[Math.min(s.length - 1, Math.floor(q * s.length))] as number, 2);
  return { n: s.length, p25: at(0.25), p50: at(0.5), p75: at(0.75) };
}

/** Per-round differences a − b, where both streams of the round completed. */
export function paired(a: number[], b: number[]) {
  const out: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    if (Number.isFinite(x) && Number.isFinite(y)) out.push(x - y);
  }
  return quartiles(out);
}

/**
 * Rounds of one short stream to each of `targets`, in a fresh random order each round, until
 * `rounds` or `maxMs`: each target's first-token times by round (NaN where it failed), so that
 * `paired` can take one target's from another's.
 */
export async function pairedTtft(targets: BenchTarget[], rounds: number, maxMs: number) {
  const ttft = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  const deadline = Date.now() + maxMs;
  let n = 0;
  for (; n < rounds && Date.now() < deadline; n++) {
    for (const t of shuffle(targets)) {
      const r = await send(t, SHORT);
      ttft.get(t.name)?.push(completed(r) ? (r.firstTokenMs as number) : Number.NaN);
    }
  }
  return { rounds: n, of: (t: BenchTarget) => ttft.get(t.name) ?? [] };
}
