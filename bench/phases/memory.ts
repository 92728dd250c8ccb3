/**
 * @module The memory phases, on the Workers runtime alone: one long stream (RSS and the live
 * heap against the tokens received), many streams open at once, and the wrangler dev relay probe.
 */
import { completed } from "../lib/client";
import { censusGrowth, connectHeapProbe, type HeapCensus } from "../lib/inspector";
import { sleep } from "../lib/procs";
import { round, slope } from "../lib/stats";
import { steadyRss, type WranglerDev } from "../lib/wrangler";
import { type BenchTarget, failureKind, mib, nowMs, PLAN, send, tally } from "./common";

interface MemSample {
  ms: number;
  progress: number;
  rssKib: number;
}

/** Samples a Worker's workerd RSS every `everyMs` until stopped. */
function sampleRss(dev: WranglerDev, progress: () => number, everyMs: number) {
  const samples: MemSample[] = [];
  const start = Date.now();
  const take = () => {
    const rss = dev.rss().worker;
    if (rss !== null) samples.push({ ms: Date.now() - start, progress: progress(), rssKib: rss });
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      take();
      return samples;
    },
  };
}

/**
 * One 10,000-token stream (a token every millisecond or so, about 12 s) through a Worker on the
 * miniflare runtime: RSS every 100 ms, and the live JS heap (after a full collection) every
 * 1.5 s against the tokens received so far, before the stream and after it settled.
 */
export async function longStreamPhase(t: BenchTarget) {
  const n = PLAN.longStreamTokens;
  const dev = t.dev as WranglerDev;
  const probe = await connectHeapProbe(dev.inspectorPort as number);
  try {
    const heapBefore = (await probe.heapAfterGc()).usedMib;
    const rssBefore = await steadyRss(dev);
    let received = 0;
    const heap: { tokens: number; usedMib: number }[] = [];
    const rss = sampleRss(dev, () => received, 100);
    let streaming = true;
    // Also a census of the live heap by kind early in the stream and late in it: what grew in
    // between, compiled code aside, is what the stream keeps per token, free of the noise of
    // one heap-size reading (a few hundred KiB either way).
    const censuses: Partial<Record<"early" | "late", { tokens: number; census: HeapCensus }>> = {};
    const heapSampler = (async () => {
      while (streaming) {
        await sleep(1_500);
        if (!streaming) break;
        const at = received;
        heap.push({ tokens: at, usedMib: (await probe.heapAfterGc()).usedMib });
        if (!censuses.early && at >= n * 0.1) {
          censuses.early = { tokens: received, census: await probe.census() };
        } else if (censuses.early && at >= n * 0.7 && at < n) {
          censuses.late = { tokens: received, census: await probe.census() };
        }
      }
    })();
    const r = await send(t, `A long answer please [[fake tokens=${n} delay=1 ignoremax=1]]`, {
      onToken: (k) => {
        received = k;
      },
      timeoutMs: 60_000,
    });
    streaming = false;
    await heapSampler;
    const samples = rss.stop();
    await sleep(1_500);
    const heapAfter = (await probe.heapAfterGc()).usedMib;
    const rssAfter = await steadyRss(dev);
    const inStream = samples.filter((x) => x.progress > 0);
    const rssSlope = slope(inStream.map((x) => ({ x: x.progress / 1000, y: x.rssKib / 1024 })));
    const heapSlope = slope(heap.map((x) => ({ x: x.tokens / 1000, y: x.usedMib })));
    const kept = (() => {
      const { early: a, late: b } = censuses;
      if (!a || !b || b.tokens <= a.tokens) return null;
      const grown = censusGrowth(a.census, b.census, 1_000).filter(
        (g) => !g.kind.startsWith("code:"),
      );
      const kib = grown.reduce((sum, g) => sum + g.kib, 0);
      return {
        from_tokens: a.tokens,
        to_tokens: b.tokens,
        kib_per_1k_tokens: round((kib * 1000) / (b.tokens - a.tokens), 1),
        grew_most: grown.slice(0, 5),
      };
    })();
    return {
      completed: completed(r) && r.tokens === n,
      tokens: r.tokens,
      duration_ms: round(r.endMs, 0),
      heap_mib: {
        before: round(heapBefore, 2),
        during: heap.map((x) => [x.tokens, round(x.usedMib, 2)]),
        after: round(heapAfter, 2),
        growth: round(heapAfter - heapBefore, 2),
        slope_kib_per_1k_tokens: round(heapSlope === null ? null : heapSlope * 1024, 1),
        /** Live objects (compiled code aside) added between an early and a late census. */
        census_growth: kept,
      },
      rss_mib: {
        before: round(mib(rssBefore), 1),
        first_token: round(mib(inStream[0]?.rssKib), 1),
        last_token: round(mib(inStream[inStream.length - 1]?.rssKib), 1),
        peak: round(mib(Math.max(...samples.map((x) => x.rssKib))), 1),
        after: round(mib(rssAfter), 1),
        slope_per_1k_tokens: round(rssSlope, 3),
      },
    };
  } finally {
    probe.close();
  }
}

/**
 * `PLAN.concurrentStreams` streams (15 tokens, 200 ms apart) opened within one second, so all are
 * open together for about two seconds: RSS sampled, the live heap read while all are open and
 * after they ended.
 */
export async function concurrentPhase(t: BenchTarget) {
  const dev = t.dev as WranglerDev;
  const probe = await connectHeapProbe(dev.inspectorPort as number);
  try {
    const heapBefore = (await probe.heapAfterGc()).usedMib;
    const baseline = await steadyRss(dev);
    let open = 0;
    let maxOpen = 0;
    let heapOpen: { open: number; usedMib: number } | null = null;
    const sampler = sampleRss(dev, () => open, 100);
    const start = nowMs();
    const all = Promise.all(
      Array.from({ length: PLAN.concurrentStreams }, async (_, i) => {
        await sleep((i * 1000) / PLAN.concurrentStreams);
        const r = await send(t, "Many at once [[fake tokens=15 delay=200]]", {
          timeoutMs: 60_000,
          onHeaders: () => {
            open++;
            maxOpen = Math.max(maxOpen, open);
          },
        });
        if (r.headersMs !== null) open--;
        return r;
      }),
    );
    // All streams are open between about 1 s and 3 s.
    await sleep(1_600);
    const atOpen = open;
    heapOpen = { open: atOpen, usedMib: (await probe.heapAfterGc()).usedMib };
    const results = await all;
    const wall = nowMs() - start;
    const samples = sampler.stop();
    await sleep(1_500);
    const heapAfter = (await probe.heapAfterGc()).usedMib;
    const after = await steadyRss(dev);
    const peak = Math.max(...samples.map((x) => x.rssKib));
    return {
      streams: results.length,
      completed: results.filter(completed).length,
      errors: tally(results),
      max_open_at_once: maxOpen,
      wall_ms: round(wall, 0),
      heap_mib: {
        before: round(heapBefore, 2),
        with_streams_open: round(heapOpen.usedMib, 2),
        open_at_that_moment: heapOpen.open,
        after: round(heapAfter, 2),
        per_open_stream_kib:
          heapOpen.open > 0
            ? round(((heapOpen.usedMib - heapBefore) * 1024) / heapOpen.open, 1)
            : null,
      },
      rss_mib: {
        before: round(mib(baseline), 1),
        peak: round(mib(peak), 1),
        after: round(mib(after), 1),
        per_stream_kib:
          baseline === null ? null : round((peak - baseline) / PLAN.concurrentStreams, 1),
      },
    };
  } finally {
    probe.close();
  }
}

/**
 * Under `wrangler dev`, the inspector relay keeps every network event of the Worker until a
 * devtools client attaches. One fast 10,000-token stream through the floor shows what that costs:
 * how long the stream took, how far wrangler's proxy workerd grew, and whether it still answers.
 */
export async function relayProbe(t: BenchTarget) {
  const dev = t.dev as WranglerDev;
  const proxy = () => {
    const r = dev.rss();
    return r.worker === null ? null : r.allWorkerd - r.worker;
  };
  const before = proxy();
  const r = await send(t, "A long answer please [[fake tokens=10000 delay=0 ignoremax=1]]", {
    timeoutMs: 12_000,
  });
  const after = proxy();
  let healthz = "no answer within 3 s";
  try {
    const res = await fetch(`${dev.url}/healthz`, { signal: AbortSignal.timeout(3_000) });
    healthz = `${res.status}`;
  } catch {
    // left as no answer
  }
  return {
    target: t.label,
    stream: completed(r) ? "completed" : `not completed (${failureKind(r)}, ${r.tokens} tokens)`,
    duration_ms: round(r.endMs, 0),
    proxy_workerd_rss_before_mib: round(mib(before), 1),
    proxy_workerd_rss_after_mib: round(mib(after), 1),
    healthz_after: healthz,
  };
}
