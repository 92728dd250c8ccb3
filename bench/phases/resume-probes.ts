/**
 * @module The resume phase's probes of one gateway: the storage writes its stream owners make
 * per stream (from their `stream_end` lines), and its heap per open stream with many held open
 * at once (the memory phase's method).
 */
import { completed, type StreamResult } from "../lib/client";
import { censusGrowth, connectHeapProbe } from "../lib/inspector";
import { sleep } from "../lib/procs";
import { round } from "../lib/stats";
import type { WranglerDev } from "../lib/wrangler";
import { type BenchTarget, nowMs, PLAN, send, tally } from "./common";

/**
 * Streams held open at once for the heap: opened over 3 s (with one owner per stream, a burst of
 * 200 in 1 s made the local runtime create 200 owners, each with its own SQLite file, at once;
 * owners are per principal now, but the ramp is kept so that figures stay comparable), each
 * lasting about 12 s, so all are open together for several seconds.
 */
export const HELD = {
  streams: PLAN.concurrentStreams,
  rampMs: 3_000,
  waitMs: 10_000,
  message: "Held open [[fake tokens=60 delay=200]]",
};

/** The owner's `stream_end` figures of one kind of stream. */
export interface EndLine {
  tokens: number;
  writes: number;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** Runs `n` streams of `message` on `t` (a few at once), and reads their owners' writes. */
export async function writesOf(
  t: BenchTarget,
  message: string,
  n: number,
  ends: EndLine[],
): Promise<{
  streams: number;
  writes_per_stream: number | null;
  writes_per_1k_tokens: number | null;
  tokens_per_stream: number | null;
  errors: Record<string, number>;
}> {
  const from = ends.length;
  const results: StreamResult[] = [];
  for (let i = 0; i < n; i += 4) {
    results.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(4, n - i) }, () => send(t, message, { timeoutMs: 60_000 })),
      )),
    );
  }
  // The stream_end line follows the last frame by a little.
  const deadline = Date.now() + 5_000;
  const done = results.filter(completed).length;
  while (ends.length - from < done && Date.now() < deadline) await sleep(50);
  const mine = ends.slice(from);
  const tokens = sum(mine.map((e) => e.tokens));
  const writes = sum(mine.map((e) => e.writes));
  return {
    streams: mine.length,
    tokens_per_stream: mine.length ? round(tokens / mine.length, 1) : null,
    writes_per_stream: mine.length ? round(writes / mine.length, 2) : null,
    writes_per_1k_tokens: tokens ? round((writes * 1000) / tokens, 2) : null,
    errors: tally(results),
  };
}

/**
 * The memory phase's method, held until every stream is open: `HELD.streams` streams opened
 * over `HELD.rampMs`; the live heap (after a full collection) once all have their headers (or
 * `HELD.waitMs` passed), over the heap before, per open stream, and which kinds of object it
 * grew by (a heap census before and while open); and the heap once all ended.
 */
export async function heldOpen(t: BenchTarget) {
  const dev = t.dev as WranglerDev;
  const probe = await connectHeapProbe(dev.inspectorPort as number);
  try {
    const before = (await probe.heapAfterGc()).usedMib;
    const censusBefore = await probe.census();
    let open = 0;
    const all = Promise.all(
      Array.from({ length: HELD.streams }, async (_, i) => {
        await sleep((i * HELD.rampMs) / HELD.streams);
        const r = await send(t, HELD.message, {
          timeoutMs: 60_000,
          onHeaders: () => {
            open++;
          },
        });
        if (r.headersMs !== null) open--;
        return r;
      }),
    );
    const start = nowMs();
    await sleep(HELD.rampMs);
    while (open < HELD.streams && nowMs() - start < HELD.waitMs) await sleep(50);
    const allOpenMs = nowMs() - start;
    const atOpen = open;
    const withOpen = (await probe.heapAfterGc()).usedMib;
    // What the open streams' heap is made of: the kinds of object that grew, per open stream.
    const byKind = censusGrowth(censusBefore, await probe.census(), 12).map((g) => ({
      kind: g.kind.replace(/[|`\s]+/g, " "),
      per_stream: atOpen > 0 ? round(g.count / atOpen, 1) : null,
      kib_per_stream: atOpen > 0 ? round(g.kib / atOpen, 2) : null,
    }));
    const results = await all;
    await sleep(1_500);
    const after = (await probe.heapAfterGc()).usedMib;
    return {
      streams: results.length,
      completed: results.filter(completed).length,
      errors: tally(results),
      open_when_read: atOpen,
      ms_until_read: round(allOpenMs, 0),
      heap_mib: {
        before: round(before, 2),
        with_streams_open: round(withOpen, 2),
        after: round(after, 2),
      },
      per_open_stream_kib: atOpen > 0 ? round(((withOpen - before) * 1024) / atOpen, 1) : null,
      /** The object kinds that grew most with the streams open (heap census), per open stream. */
      per_open_stream_by_kind: byKind,
      /** What stayed after they all ended, per stream (the owners live on for the resume TTL). */
      left_after_per_stream_kib: round(((after - before) * 1024) / results.length, 1),
    };
  } finally {
    probe.close();
  }
}
