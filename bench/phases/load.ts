/** @module The load phases: one request at a time for latency, closed loops for throughput. */
import { completed, type StreamOptions, type StreamResult } from "../lib/client";
import { sleep } from "../lib/procs";
import { type BenchTarget, log, nowMs, PLAN, SHORT, send, shuffle, tally } from "./common";
import { cpuMs } from "./cpu";

/** Rounds of one request per target, in a fresh random order each round. */
export async function latencyPhase(targets: BenchTarget[]) {
  const results = new Map<string, StreamResult[]>(targets.map((t) => [t.name, []]));
  const deadline = Date.now() + PLAN.latencyMaxMs;
  let rounds = 0;
  for (; rounds < PLAN.latencyRounds && Date.now() < deadline; rounds++) {
    for (const t of shuffle(targets)) results.get(t.name)?.push(await send(t, SHORT));
  }
  return { rounds, results };
}

/**
 * `concurrency` clients, each sending the next request (`message`, the short stream unless
 * given) when its last one ended, for `ms`.
 */
export async function closedLoop(
  t: BenchTarget,
  concurrency: number,
  ms: number,
  message = SHORT,
  options: Partial<StreamOptions> = {},
) {
  const results: StreamResult[] = [];
  const start = nowMs();
  const until = start + ms;
  let started = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (nowMs() < until && started < PLAN.throughputMaxRequests) {
        started++;
        results.push(await send(t, message, options));
      }
    }),
  );
  return { results, elapsedMs: nowMs() - start };
}

/** One target's closed loops at one concurrency, summed over the repetitions. */
export interface LoopTotals {
  ms: number;
  results: StreamResult[];
  /** CPU ms of the Worker's workerd over those loops (null without one). */
  cpuMs: number | null;
}

/** Closed loops of every target at each concurrency, in a rotating order, with their CPU. */
export async function throughputPhase(targets: BenchTarget[]) {
  const out = new Map<string, Map<number, LoopTotals>>(targets.map((t) => [t.name, new Map()]));
  for (const [ci, c] of PLAN.concurrencies.entries()) {
    for (let rep = 0; rep < PLAN.throughputReps; rep++) {
      // A different order each pass, so no target always runs right after the same one.
      const shift = ci * PLAN.throughputReps + rep;
      const order = targets.map((_, i) => targets[(i + shift) % targets.length] as BenchTarget);
      for (const t of order) {
        const cpuBefore = cpuMs(t);
        const { results, elapsedMs } = await closedLoop(t, c, PLAN.throughputRunMs);
        const cpuAfter = cpuMs(t);
        const byC = out.get(t.name) as Map<number, LoopTotals>;
        const slot = byC.get(c) ?? { ms: 0, results: [], cpuMs: 0 };
        slot.ms += elapsedMs;
        slot.cpuMs =
          slot.cpuMs === null || cpuBefore === null || cpuAfter === null
            ? null
            : slot.cpuMs + cpuAfter - cpuBefore;
        slot.results.push(...results);
        byC.set(c, slot);
        await sleep(150);
      }
    }
    log(`throughput at concurrency ${c} done`);
  }
  return out;
}

/** Closed loops whose CPU is read: how many, how long, of which stream. */
export interface CpuLoops {
  concurrency: number;
  ms: number;
  reps: number;
  message?: string;
  options?: Partial<StreamOptions>;
}

/**
 * CPU ms per completed stream of `t`'s workerd (its Durable Objects included) over `o.reps`
 * closed loops, and the streams that did not complete, by kind; `ms` null without a process.
 */
export async function cpuPerStream(
  t: BenchTarget,
  o: CpuLoops,
): Promise<{ ms: number | null; streams: number; errors: Record<string, number> }> {
  let cpu = 0;
  let streams = 0;
  const failed: StreamResult[] = [];
  for (let rep = 0; rep < o.reps; rep++) {
    const before = cpuMs(t);
    const { results } = await closedLoop(t, o.concurrency, o.ms, o.message, o.options);
    const after = cpuMs(t);
    if (before === null || after === null) return { ms: null, streams: 0, errors: {} };
    cpu += after - before;
    streams += results.filter(completed).length;
    failed.push(...results.filter((r) => !completed(r)));
    await sleep(150);
  }
  return { ms: streams ? cpu / streams : null, streams, errors: tally(failed) };
}
