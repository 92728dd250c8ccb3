/**
 * @module Resumable streams, before and after (`--resume`, or alone with `--resume-only`): for
 * each store (Upstash, then Durable Object) two more gateways of the same build, one with
 * STREAM_RESUME_TTL_S "0" (the direct path: before) and one with the default (every stream runs
 * through its principal's StreamOwner Durable Object: after). Per store:
 * - first token over the floor: rounds of one request each to the floor, off and on, in a fresh
 *   random order, so each round's difference cancels the machine's drift in load;
 * - CPU per stream of each gateway's workerd (the owners run in the same process) over closed
 *   loops of the short 20-token stream at c=16 and c=64 and of a 2,000-token one at c=16, off
 *   and on alternating;
 * - heap per open stream: the memory phase's many streams held open at once (its method), off
 *   and on, and the heap left after they ended (the owners live on for the resume TTL);
 * - storage writes per stream and per 1,000 tokens: the `storage_writes` (SQLite rows written)
 *   of the owner's `stream_end` lines, for short, long and slow (paced) streams.
 * The bar: resumability must cost at most 1 ms of first token and 20 % of CPU per short
 * stream. The probes are in resume-probes.ts, the report in resume-markdown.ts.
 */
import { agentFor } from "../lib/client";
import { gatewayVars, mintTokens, ROOT, type Stack } from "../lib/stack";
import { meanOf, round } from "../lib/stats";
import { type Runtime, startWranglerDev } from "../lib/wrangler";
import { type BenchTarget, log, PLAN, QUICK, RUN, SHORT, send } from "./common";
import { type CpuLoops, closedLoop, cpuPerStream } from "./load";
import { paired, pairedTtft } from "./paired";
import { type EndLine, HELD, heldOpen, writesOf } from "./resume-probes";

const argv = process.argv.slice(2);
/** `--resume-rounds n`: paired rounds per store (default: as many as the budgets' paired phase). */
const ROUNDS = (() => {
  const i = argv.indexOf("--resume-rounds");
  const n = i >= 0 ? Number(argv[i + 1]) : Number.NaN;
  return Number.isInteger(n) && n > 0 ? n : PLAN.abRounds;
})();
const LOOP = { ms: QUICK ? 600 : 1_000, reps: QUICK ? 1 : 3, options: { timeoutMs: 60_000 } };
/** The long stream: 2,000 tokens, no delay (past the gateway's max_tokens, as the upstream may). */
const LONG_TOKENS = 2_000;
const LONG = `A long answer please [[fake tokens=${LONG_TOKENS} delay=0 ignoremax=1]]`;
/** A slow stream (about 3 s): its frames are stored by time (a batch a second), not by size. */
const SLOW_TOKENS = 300;
const SLOW = `A slow answer please [[fake tokens=${SLOW_TOKENS} delay=10 ignoremax=1]]`;
/** The closed loops whose CPU per stream is read: short at c=16 and c=64, long at c=16. */
const CPU_LOOPS: Record<"short" | "short_c64" | "long", CpuLoops> = {
  short: { ...LOOP, concurrency: 16, message: SHORT },
  short_c64: { ...LOOP, concurrency: 64, message: SHORT },
  long: { ...LOOP, concurrency: 16, message: LONG },
};
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

const pct = (on: number | null, off: number | null) =>
  on === null || off === null || off === 0 ? null : round(((on - off) / off) * 100, 1);

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
    await closedLoop(t, 16, 300);
  }
  await closedLoop(off, 4, 300, LONG);
  await closedLoop(on, 4, 300, LONG);

  log(`resume, ${STORE_TITLE[store]} store: up to ${ROUNDS} paired rounds`);
  const { rounds, of } = await pairedTtft(targets, ROUNDS, PLAN.abMaxMs);

  log(`resume, ${STORE_TITLE[store]} store: CPU per stream, c=16 and c=64`);
  const cpu = {
    short: { off: [] as (number | null)[], on: [] as (number | null)[] },
    short_c64: { off: [] as (number | null)[], on: [] as (number | null)[] },
    long: { off: [] as (number | null)[], on: [] as (number | null)[] },
  };
  const cpuErrors: Record<"off" | "on", Record<string, number>> = { off: {}, on: {} };
  const note = (side: "off" | "on", e: Record<string, number>) => {
    for (const [k, v] of Object.entries(e)) cpuErrors[side][k] = (cpuErrors[side][k] ?? 0) + v;
  };
  // Alternating, so drift in the machine's load falls on both alike.
  for (let i = 0; i < 2; i++) {
    for (const kind of ["short", "short_c64", "long"] as const) {
      const sides: ["off" | "on", BenchTarget][] = [
        ["off", off],
        ["on", on],
      ];
      for (const [side, t] of i % 2 === 0 ? sides : sides.reverse()) {
        const r = await cpuPerStream(t, CPU_LOOPS[kind]);
        cpu[kind][side].push(r.ms);
        note(side, r.errors);
      }
    }
  }
  const cpuOf = (kind: keyof typeof cpu) => {
    const o = meanOf(cpu[kind].off);
    const n = meanOf(cpu[kind].on);
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
  const cpuShort64 = cpuOf("short_c64");
  return {
    store: STORE_TITLE[store],
    rounds,
    /** Per-round time to first token over the floor's of the same round, ms. */
    over_floor: { resume_off: overOff, resume_on: overOn },
    /** Per-round time to first token with resume on minus off, ms. */
    on_minus_off: onMinusOff,
    cpu_ms_per_stream: {
      short_20_tokens: cpuShort,
      short_20_tokens_c64: cpuShort64,
      long_2000_tokens: cpuOf("long"),
      errors: cpuErrors,
    },
    heap_per_open_stream: heap,
    storage_writes: writes,
    log_events: logEvents,
    /** The bar: at most 1 ms of first token and 20 % of CPU per short stream. */
    bar: {
      first_token_within_1ms: onMinusOff.p50 === null ? null : onMinusOff.p50 <= 1,
      cpu_short_within_20_percent:
        cpuShort.percent === null || cpuShort64.percent === null
          ? null
          : Math.max(cpuShort.percent, cpuShort64.percent) <= 20,
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
