/**
 * @module Resumable streams, before and after (`--resume`, or alone with `--resume-only`): for
 * each store (Upstash, then Durable Object) two more gateways of the same build, one with
 * STREAM_RESUME_TTL_S "0" (the direct path: before) and one with the default (every stream runs
 * through its principal's StreamOwner Durable Object: after). Per store:
 * - first token over the floor: rounds of one request each to the floor, off and on, in a fresh
 *   random order, so each round's difference cancels the machine's drift in load;
 * - CPU per stream of each gateway's workerd (the owners run in the same process) over closed
 *   loops at c=16, of the short 20-token stream and of a 2,000-token one, off and on alternating;
 * - heap per open stream: the memory phase's many streams held open at once (its method), off
 *   and on, and the heap left after they ended (the owners live on for the resume TTL);
 * - storage writes per stream and per 1,000 tokens: the `storage_writes` (SQLite rows written)
 *   of the owner's `stream_end` lines, for short, long and slow (paced) streams.
 * The bar: resumability must cost at most 1 ms of first token and 20 % of CPU per short
 * stream.
 */
import { agentFor, completed, type StreamResult } from "../lib/client";
import { connectHeapProbe } from "../lib/inspector";
import { sleep } from "../lib/procs";
import { gatewayVars, mintTokens, ROOT, type Stack } from "../lib/stack";
import { fmt, round, table } from "../lib/stats";
import { type Runtime, startWranglerDev, type WranglerDev } from "../lib/wrangler";
import {
  type BenchTarget,
  log,
  nowMs,
  PLAN,
  QUICK,
  RUN,
  SHORT,
  send,
  shuffle,
  tally,
} from "./common";
import { cpuMs } from "./cpu";
import { paired } from "./paired";

const argv = process.argv.slice(2);
/** `--resume-rounds n`: paired rounds per store (default: as many as the budgets' paired phase). */
const ROUNDS = (() => {
  const i = argv.indexOf("--resume-rounds");
  const n = i >= 0 ? Number(argv[i + 1]) : Number.NaN;
  return Number.isInteger(n) && n > 0 ? n : PLAN.abRounds;
})();
const LOOP = { concurrency: 16, ms: QUICK ? 600 : 1_000, reps: QUICK ? 1 : 3 };
/** The long stream: 2,000 tokens, no delay (past the gateway's max_tokens, as the upstream may). */
const LONG_TOKENS = 2_000;
const LONG = `A long answer please [[fake tokens=${LONG_TOKENS} delay=0 ignoremax=1]]`;
/** A slow stream (about 3 s): its frames are stored by time (a batch a second), not by size. */
const SLOW_TOKENS = 300;
const SLOW = `A slow answer please [[fake tokens=${SLOW_TOKENS} delay=10 ignoremax=1]]`;
/** Streams of each kind whose storage writes are read. */
const WRITE_SAMPLES = { short: QUICK ? 10 : 40, long: QUICK ? 4 : 10, slow: QUICK ? 2 : 4 };

type Store = "upstash" | "do";
const STORE_TITLE: Record<Store, string> = { upstash: "Upstash", do: "Durable Object" };

/**
 * Budgets that run on every stream but never refuse one here: the long streams of the CPU loops
 * would exhaust the default anonymous ones (a refusal is cheap and would skew CPU per stream).
 */
const GENEROUS_BUDGETS = {
  BUDGET_USER_DAILY_USD: "100000",
  BUDGET_ANON_DAILY_USD: "100000",
  BUDGET_ANON_HOURLY_USD: "1000000",
  BUDGET_GLOBAL_HOURLY_USD: "1000000",
};
/**
 * Streams held open at once for the heap: opened over 3 s (with one owner per stream, a burst of
 * 200 in 1 s made the local runtime create 200 owners, each with its own SQLite file, at once;
 * owners are per principal now, but the ramp is kept so that figures stay comparable), each
 * lasting about 12 s, so all are open together for several seconds.
 */
const HELD = {
  streams: PLAN.concurrentStreams,
  rampMs: 3_000,
  waitMs: 10_000,
  message: "Held open [[fake tokens=60 delay=200]]",
};

/** Where the phase runs: the floor of one runtime set (or one started alone). */
export interface ResumeBase {
  runtime: Runtime;
  title: string;
  floor: BenchTarget;
}

/** One gateway of the phase: resume off (STREAM_RESUME_TTL_S "0") or on (the default). */
async function startGateway(
  stack: Stack,
  base: ResumeBase,
  store: Store,
  resume: "off" | "on",
): Promise<BenchTarget> {
  const tag = `rs${store === "do" ? "d" : "u"}${resume}`;
  const dev = await startWranglerDev({
    name: `${base.runtime}-gateway-${store}-resume-${resume}`,
    runtime: base.runtime,
    root: ROOT,
    vars: gatewayVars(stack, {
      prefix: `b${RUN}${tag}`,
      ...(store === "upstash" ? { scope: `bench-${RUN}-${tag}` } : {}),
      extra: { ...GENEROUS_BUDGETS, ...(resume === "off" ? { STREAM_RESUME_TTL_S: "0" } : {}) },
    }),
  });
  return {
    name: `${base.runtime}/gateway-${store}-resume-${resume}`,
    label: `${base.title}: gateway, ${STORE_TITLE[store]} store, anonymous, resume ${resume}`,
    kind: "worker",
    runtime: base.runtime,
    url: dev.url,
    agent: agentFor(256),
    dev,
    next: 0,
    tokens: await mintTokens(dev.url, 64, "198.18.200.1"),
  };
}

/** `concurrency` clients sending `message` back to back for `ms`. */
async function loop(t: BenchTarget, message: string, concurrency: number, ms: number) {
  const results: StreamResult[] = [];
  const until = nowMs() + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (nowMs() < until && results.length < PLAN.throughputMaxRequests) {
        results.push(await send(t, message, { timeoutMs: 60_000 }));
      }
    }),
  );
  return results;
}

/** CPU ms per completed stream of `t`'s workerd over closed loops of `message`. */
async function cpuPerStream(t: BenchTarget, message: string) {
  let cpu = 0;
  let streams = 0;
  const failed: StreamResult[] = [];
  for (let rep = 0; rep < LOOP.reps; rep++) {
    const before = cpuMs(t);
    const results = await loop(t, message, LOOP.concurrency, LOOP.ms);
    const after = cpuMs(t);
    if (before === null || after === null) return { ms: null, streams: 0, errors: {} };
    cpu += after - before;
    streams += results.filter(completed).length;
    failed.push(...results.filter((r) => !completed(r)));
    await sleep(150);
  }
  return { ms: streams ? cpu / streams : null, streams, errors: tally(failed) };
}

const mean = (xs: (number | null)[]) =>
  xs.length === 0 || xs.some((x) => x === null)
    ? null
    : round((xs as number[]).reduce((a, b) => a + b) / xs.length, 3);
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const pct = (on: number | null, off: number | null) =>
  on === null || off === null || off === 0 ? null : round(((on - off) / off) * 100, 1);

/** The owner's `stream_end` figures of one kind of stream. */
interface EndLine {
  tokens: number;
  writes: number;
}

/** Runs `n` streams of `message` on `t` (a few at once), and reads their owners' writes. */
async function writesOf(
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
 * `HELD.waitMs` passed), over the heap before, per open stream; and the heap once all ended.
 */
async function heldOpen(t: BenchTarget) {
  const dev = t.dev as WranglerDev;
  const probe = await connectHeapProbe(dev.inspectorPort as number);
  try {
    const before = (await probe.heapAfterGc()).usedMib;
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
      /** What stayed after they all ended, per stream (the owners live on for the resume TTL). */
      left_after_per_stream_kib: round(((after - before) * 1024) / results.length, 1),
    };
  } finally {
    probe.close();
  }
}

/** One store's before and after. */
async function storePhase(stack: Stack, base: ResumeBase, store: Store) {
  const [off, on] = await Promise.all([
    startGateway(stack, base, store, "off"),
    startGateway(stack, base, store, "on"),
  ]);
  const ends: EndLine[] = [];
  on.dev?.onLine((line) => {
    if (line.event !== "stream_end" || typeof line.storage_writes !== "number") return;
    ends.push({ tokens: Number(line.output_tokens) || 0, writes: line.storage_writes });
  });
  const targets = [base.floor, off, on];
  for (const t of targets) {
    for (let i = 0; i < PLAN.warmupPerTarget; i++) await send(t, SHORT);
    await loop(t, SHORT, 16, 300);
  }
  await loop(off, LONG, 4, 300);
  await loop(on, LONG, 4, 300);

  log(`resume, ${STORE_TITLE[store]} store: up to ${ROUNDS} paired rounds`);
  const ttft = new Map<string, number[]>(targets.map((t) => [t.name, []]));
  const deadline = Date.now() + PLAN.abMaxMs;
  let rounds = 0;
  for (; rounds < ROUNDS && Date.now() < deadline; rounds++) {
    for (const t of shuffle(targets)) {
      const r = await send(t, SHORT);
      ttft.get(t.name)?.push(completed(r) ? (r.firstTokenMs as number) : Number.NaN);
    }
  }
  const of = (t: BenchTarget) => ttft.get(t.name) ?? [];

  log(`resume, ${STORE_TITLE[store]} store: CPU per stream, c=${LOOP.concurrency}`);
  // Alternating, so drift in the machine's load falls on both alike.
  const cpu = {
    short: { off: [] as (number | null)[], on: [] as (number | null)[] },
    long: { off: [] as (number | null)[], on: [] as (number | null)[] },
  };
  const cpuErrors: Record<"off" | "on", Record<string, number>> = { off: {}, on: {} };
  const note = (side: "off" | "on", e: Record<string, number>) => {
    for (const [k, v] of Object.entries(e)) cpuErrors[side][k] = (cpuErrors[side][k] ?? 0) + v;
  };
  for (let i = 0; i < 2; i++) {
    for (const [kind, message] of [
      ["short", SHORT],
      ["long", LONG],
    ] as const) {
      for (const [side, t] of (i % 2 === 0
        ? [
            ["off", off],
            ["on", on],
          ]
        : [
            ["on", on],
            ["off", off],
          ]) as ["off" | "on", BenchTarget][]) {
        const r = await cpuPerStream(t, message);
        cpu[kind][side].push(r.ms);
        note(side, r.errors);
      }
    }
  }
  const cpuOf = (kind: "short" | "long") => {
    const o = mean(cpu[kind].off);
    const n = mean(cpu[kind].on);
    return {
      off: o,
      on: n,
      on_minus_off: o === null || n === null ? null : round(n - o, 3),
      percent: pct(n, o),
    };
  };

  let heap: {
    off: Awaited<ReturnType<typeof heldOpen>>;
    on: Awaited<ReturnType<typeof heldOpen>>;
  } | null = null;
  if (base.runtime === "miniflare") {
    log(`resume, ${STORE_TITLE[store]} store: ${HELD.streams} streams open at once, off then on`);
    heap = { off: await heldOpen(off), on: await heldOpen(on) };
  }

  log(`resume, ${STORE_TITLE[store]} store: storage writes of the owners`);
  const writes = {
    short: await writesOf(on, SHORT, WRITE_SAMPLES.short, ends),
    long: await writesOf(on, LONG, WRITE_SAMPLES.long, ends),
    slow: await writesOf(on, SLOW, WRITE_SAMPLES.slow, ends),
  };

  // The gateways' log lines by event (warnings such as store timeouts show here).
  const logEvents = {
    off: Object.fromEntries(off.dev?.eventCounts ?? []),
    on: Object.fromEntries(on.dev?.eventCounts ?? []),
  };
  await Promise.all([off.dev?.stop(), on.dev?.stop()]);
  off.agent.destroy();
  on.agent.destroy();
  const overOff = paired(of(off), of(base.floor));
  const overOn = paired(of(on), of(base.floor));
  const onMinusOff = paired(of(on), of(off));
  const cpuShort = cpuOf("short");
  return {
    store: STORE_TITLE[store],
    rounds,
    /** Per-round time to first token over the floor's of the same round, ms. */
    over_floor: { resume_off: overOff, resume_on: overOn },
    /** Per-round time to first token with resume on minus off, ms. */
    on_minus_off: onMinusOff,
    cpu_ms_per_stream: {
      concurrency: LOOP.concurrency,
      short_20_tokens: cpuShort,
      long_2000_tokens: cpuOf("long"),
      errors: cpuErrors,
    },
    heap_per_open_stream: heap,
    storage_writes: writes,
    log_events: logEvents,
    /** The bar: at most 1 ms of first token and 20 % of CPU per short stream. */
    bar: {
      first_token_within_1ms: onMinusOff.p50 === null ? null : onMinusOff.p50 <= 1,
      cpu_short_within_20_percent: cpuShort.percent === null ? null : cpuShort.percent <= 20,
    },
  };
}

/** Runs the phase for both stores, one after the other, beside `base`'s floor. */
export async function resumePhase(stack: Stack, base: ResumeBase) {
  const stores: Store[] = ["upstash", "do"];
  const out = [];
  for (const store of stores) out.push(await storePhase(stack, base, store));
  return {
    runtime: base.title,
    request: {
      short: SHORT,
      long: LONG,
      slow: SLOW,
      open_wait_s: HELD.waitMs / 1000,
      open_streams: `${HELD.streams} × "${HELD.message}" opened over ${HELD.rampMs / 1000} s`,
    },
    stores: out,
  };
}

/** What the resume phase returns. */
export type ResumeAb = Awaited<ReturnType<typeof resumePhase>>;

/** The streams that did not complete, per store and side (none: a line saying so). */
function failures(r: ResumeAb): string {
  const parts: string[] = [];
  for (const s of r.stores) {
    for (const side of ["off", "on"] as const) {
      const e = {
        cpu_loops: s.cpu_ms_per_stream.errors[side],
        held_open: s.heap_per_open_stream?.[side].errors ?? {},
      };
      for (const [phase, errors] of Object.entries(e)) {
        const list = Object.entries(errors).map(([k, v]) => `${v} × ${k}`);
        if (list.length) parts.push(`${s.store} resume ${side}, ${phase}: ${list.join(", ")}`);
      }
    }
  }
  return parts.length
    ? `Streams that did not complete: ${parts.join("; ")}.`
    : "Every stream completed.";
}

/** The phase as a markdown section. */
export function resumeMarkdown(r: ResumeAb): string {
  const q = (x: { p25: number | null; p50: number | null; p75: number | null }) =>
    `${fmt(x.p50, 2)} (${fmt(x.p25, 2)} to ${fmt(x.p75, 2)})`;
  const yes = (b: boolean | null) => (b === null ? "–" : b ? "yes" : "**no**");
  const rows: string[][] = [];
  for (const s of r.stores) {
    const h = s.heap_per_open_stream;
    for (const side of ["off", "on"] as const) {
      rows.push([
        `${s.store}, resume ${side}`,
        q(side === "off" ? s.over_floor.resume_off : s.over_floor.resume_on),
        fmt(s.cpu_ms_per_stream.short_20_tokens[side], 3),
        fmt(s.cpu_ms_per_stream.long_2000_tokens[side], 2),
        h ? `${fmt(h[side].per_open_stream_kib, 1)} (${h[side].open_when_read} open)` : "–",
        h ? fmt(h[side].left_after_per_stream_kib, 1) : "–",
      ]);
    }
  }
  const diff: string[][] = r.stores.map((s) => [
    s.store,
    String(s.rounds),
    q(s.on_minus_off),
    `${fmt(s.cpu_ms_per_stream.short_20_tokens.on_minus_off, 3)} (${fmt(s.cpu_ms_per_stream.short_20_tokens.percent, 1)} %)`,
    `${fmt(s.cpu_ms_per_stream.long_2000_tokens.on_minus_off, 2)} (${fmt(s.cpu_ms_per_stream.long_2000_tokens.percent, 1)} %)`,
    `${yes(s.bar.first_token_within_1ms)} / ${yes(s.bar.cpu_short_within_20_percent)}`,
  ]);
  const writes: string[][] = r.stores.flatMap((s) =>
    (["short", "long", "slow"] as const).map((k) => [
      s.store,
      k,
      String(s.storage_writes[k].streams),
      fmt(s.storage_writes[k].tokens_per_stream, 0),
      fmt(s.storage_writes[k].writes_per_stream, 2),
      fmt(s.storage_writes[k].writes_per_1k_tokens, 2),
    ]),
  );
  return [
    "## Resumable streams: before (STREAM_RESUME_TTL_S=0) and after (the default)",
    "",
    `${r.runtime}; the same build, two gateways per store. First token over the floor: median of per-round differences, ms (25th to 75th percentile). CPU per stream of the gateway's workerd (its stream owners included) over closed loops at c=16. Heap per open stream: ${r.request.open_streams}, the live heap after a full collection once all are open (or ${r.request.open_wait_s} s passed), over the heap before, per open stream; "left after": the heap after they ended, per stream.`,
    "",
    table(
      [
        "gateway",
        "first token over the floor, ms",
        "CPU per 20-token stream, ms",
        "CPU per 2,000-token stream, ms",
        "heap per open stream, KiB",
        "heap left after, KiB per stream",
      ],
      rows,
    ),
    "",
    "On minus off (the cost of resumability), and the issue's bar (≤ 1 ms of first token / ≤ 20 % CPU per short stream):",
    "",
    table(
      [
        "store",
        "paired rounds",
        "first token, ms",
        "CPU per 20-token stream, ms",
        "CPU per 2,000-token stream, ms",
        "within the bar",
      ],
      diff,
    ),
    "",
    "Storage writes of the stream owners (SQLite rows written, from their `stream_end` lines; alarm writes are not counted: at most two per stream, none while an earlier one is pending):",
    "",
    table(
      [
        "store",
        "stream",
        "streams",
        "tokens per stream",
        "writes per stream",
        "writes per 1,000 tokens",
      ],
      writes,
    ),
    "",
    failures(r),
    "",
  ].join("\n");
}
