/**
 * @module `npm run bench`: the gateway measured against the physical limit (the fake upstream,
 * direct), the runtime's floor (a bare re-framing Worker on the same dev server) and, where it is
 * installed, a peer gateway. Every Worker runs three times: under `wrangler dev` as a developer
 * runs it, on the same dev server without the devtools inspector (which under `wrangler dev`
 * relays every network event of the Worker to the wrangler process), and on the Workers runtime
 * alone (the deploy bundle on workerd through Miniflare, no dev proxy), whose V8 inspector also
 * gives the live heap for the memory phases. The floor runs also with one store round trip
 * first, which splits what the gateway adds into that round trip and its own work.
 * Loopback only; every loop is bounded in count and in time. Writes latest.json and latest.md
 * (and reads soak-latest.json for the ledger target) in bench/results/local/ (gitignored), in
 * bench/results/ with --update-results, or in --out <dir>; and prints the summary.
 *
 * Budgets: the Upstash gateway also runs with all four BUDGET_* "0" beside the defaults, so the
 * first token and the round trips show what the budgets cost; the Durable Object store's
 * admissions per second are measured with the shared budgets on and off.
 *
 * The phases live in bench/phases/; this file runs them in order and writes the results.
 *
 * Flags: --quick (small counts, to try the script), --skip-memory, --skip-admissions,
 * --route (also a two-target route against the default registry, bench/phases/route.ts),
 * --route-only (that phase alone, on the Workers runtime alone), --route-rounds <n>,
 * --resume (also resumable streams off against on, both stores, bench/phases/resume.ts),
 * --resume-only (that phase alone, on the Workers runtime alone), --resume-rounds <n>,
 * --update-results (write the committed bench/results/), --out <dir>,
 * --peer-dir <dir> (a directory whose node_modules holds @portkey-ai/gateway, installed there by
 * hand so that it never becomes a dependency of this project; the project's own node_modules is
 * looked in otherwise).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { agentFor } from "./lib/client";
import { cleanupAll, installCleanupHandlers, runMain } from "./lib/procs";
import { machineInfo, startStack } from "./lib/stack";
import { type AdmissionsRow, admissionsPhase } from "./phases/admissions";
import { budgetsAbPhase } from "./phases/budgets-ab";
import {
  type BenchTarget,
  log,
  OUT_DIR,
  PLAN,
  QUICK,
  RUNTIMES,
  SHORT,
  SKIP_MEMORY,
  send,
  T0,
} from "./phases/common";
import { closedLoop, latencyPhase, throughputPhase } from "./phases/load";
import { markdown, type Results } from "./phases/markdown";
import { concurrentPhase, longStreamPhase, relayProbe } from "./phases/memory";
import { startPortkey } from "./phases/peer";
import { measurements, setTargets } from "./phases/results";
import { type ResumeAb, resumePhase } from "./phases/resume";
import { resumeMarkdown } from "./phases/resume-markdown";
import { resumeOnly } from "./phases/resume-only";
import { probeRoundTrip, type RoundTrips, roundTripsOf } from "./phases/round-trips";
import { type RouteAb, routeMarkdown, routePhase } from "./phases/route";
import { routeOnly } from "./phases/route-only";
import { type RuntimeSet, startRuntimeSet } from "./phases/runtime-set";
import { judgeTargets } from "./phases/targets";

installCleanupHandlers();

const SKIP_ADMISSIONS = process.argv.includes("--skip-admissions");
const ROUTE_ONLY = process.argv.includes("--route-only");
const ROUTE = ROUTE_ONLY || process.argv.includes("--route");
const RESUME_ONLY = process.argv.includes("--resume-only");
const RESUME = RESUME_ONLY || process.argv.includes("--resume");

async function main(): Promise<void> {
  if (ROUTE_ONLY) return routeOnly();
  if (RESUME_ONLY) return resumeOnly();
  const machine = await machineInfo();
  log(`machine: ${machine.cpu} × ${machine.cores}, Node ${process.version}`);
  const stack = await startStack();
  log(`redis :${stack.redis.port}, upstash ${stack.upstashUrl}, upstream ${stack.upstreamUrl}`);
  log(
    "starting the floor and the gateway (Upstash with budgets on and off, Durable Object) under each runtime",
  );
  const sets = await Promise.all(RUNTIMES.map((r) => startRuntimeSet(stack, r.runtime, r.title)));
  const { peer, target: portkey } = await startPortkey(stack);
  log(`peer gateway ${peer.name}: ${peer.status}`);

  // Each gateway's access lines: the limit stage's store time and the upstream's time to headers.
  const access = new Map<string, { store: number[]; upstream: number[] }>();
  let recordAccess = false;
  for (const set of sets) {
    for (const t of [set.gwUp, set.gwUpOff, set.gwDo]) {
      const slot = { store: [] as number[], upstream: [] as number[] };
      access.set(t.name, slot);
      t.dev?.onLine((line) => {
        if (!recordAccess || line.event !== "request" || line.route !== "/api/v1/stream") return;
        if (line.principal !== "anonymous") return;
        if (typeof line.store_ms === "number") slot.store.push(line.store_ms);
        if (typeof line.upstream_ttfb_ms === "number") slot.upstream.push(line.upstream_ttfb_ms);
      });
    }
  }

  const direct: BenchTarget = {
    name: "direct",
    label: "direct: the fake upstream (the physical limit)",
    kind: "direct",
    url: stack.upstreamUrl,
    agent: agentFor(256),
    next: 0,
  };
  const peerTargets = portkey ? [portkey] : [];
  const latencyTargets = [direct, ...sets.flatMap((s) => setTargets(s)), ...peerTargets];
  const loadTargets = [
    direct,
    ...sets.flatMap((s) => [s.floor, s.gwUp, s.gwUpOff, s.gwDo]),
    ...peerTargets,
  ];
  const primary = sets[0] as RuntimeSet;

  // The very first stream of the Upstash gateway under wrangler dev, before any warm-up.
  const firstStream = await roundTripsOf(stack, primary.scope, primary.gwUp);

  log("warm-up");
  for (const t of latencyTargets) {
    for (let i = 0; i < PLAN.warmupPerTarget; i++) await send(t, SHORT);
    await closedLoop(t, 16, 300);
  }

  log(`latency: up to ${PLAN.latencyRounds} rounds of ${latencyTargets.length} targets`);
  recordAccess = true;
  const latency = await latencyPhase(latencyTargets);
  recordAccess = false;
  log(`latency: ${latency.rounds} rounds`);

  const abSet = sets.find((s) => s.runtime === "miniflare") ?? primary;
  log(`budgets on against off: up to ${PLAN.abRounds} paired rounds on the ${abSet.title}`);
  const budgetsAb = await budgetsAbPhase(abSet);
  log(`budgets on against off: ${budgetsAb.rounds} rounds`);
  let route: RouteAb | null = null;
  if (ROUTE) {
    log(`route: a two-target route against the default registry on the ${abSet.title}`);
    route = await routePhase(stack, abSet);
  }
  let resume: ResumeAb | null = null;
  if (RESUME) {
    log(`resume: off against on, both stores, on the ${abSet.title}`);
    resume = await resumePhase(stack, abSet);
  }

  log("throughput: closed loops at concurrency 1, 16, 64");
  const throughput = await throughputPhase(loadTargets);

  log("store round trips per stream, one request at a time, budgets on and off");
  const anon: RoundTrips[] = [];
  const user: RoundTrips[] = [];
  const anonOff: RoundTrips[] = [];
  const userOff: RoundTrips[] = [];
  for (let i = 0; i < PLAN.roundTripSamples; i++) {
    anon.push(await roundTripsOf(stack, primary.scope, primary.gwUp));
    user.push(await roundTripsOf(stack, primary.scope, primary.gwUser));
    anonOff.push(await roundTripsOf(stack, primary.offScope, primary.gwUpOff));
    userOff.push(await roundTripsOf(stack, primary.offScope, primary.gwUserOff));
  }
  const pipelineProbe = await probeRoundTrip(stack, PLAN.probeSamples);

  let admissions: AdmissionsRow[] | null = null;
  if (!SKIP_ADMISSIONS) {
    log("admissions per second of the Durable Object store, budgets off, own only, all on");
    admissions = await admissionsPhase(stack);
  }

  // Memory is read on the miniflare runtime, whose inspector the heap probe can hold: under
  // `wrangler dev` the relay holds it (and keeps every network event in wrangler's proxy, see the
  // probe at the end), and the inspector-off dev server has none.
  const longStream: Record<string, Awaited<ReturnType<typeof longStreamPhase>>> = {};
  const concurrent: Record<string, Awaited<ReturnType<typeof concurrentPhase>>> = {};
  let relay: Awaited<ReturnType<typeof relayProbe>> | null = null;
  let memorySet: RuntimeSet | null = null;
  if (!SKIP_MEMORY) {
    log("memory: stopping the dev servers but the Workers runtime's and the wrangler dev floor");
    memorySet = sets.find((s) => s.runtime === "miniflare") ?? null;
    await Promise.all(
      sets
        .filter((s) => s !== memorySet)
        .flatMap((s) => [s.floor, s.gwUp, s.gwUpOff, s.gwDo])
        .filter((t) => t !== primary.floor)
        .map((t) => t.dev?.stop()),
    );
    memorySet ??= await startRuntimeSet(stack, "miniflare", "Workers runtime alone");
    const workers = [memorySet.floor, memorySet.gwUp, memorySet.gwDo];
    for (const t of workers) await send(t, SHORT);
    log(`memory: one ${PLAN.longStreamTokens}-token stream through each Worker at once`);
    const runs = await Promise.all(workers.map((t) => longStreamPhase(t)));
    workers.forEach((t, i) => {
      longStream[t.name] = runs[i] as Awaited<ReturnType<typeof longStreamPhase>>;
    });
    log(`memory: ${PLAN.concurrentStreams} concurrent streams on each Worker in turn`);
    for (const t of workers) concurrent[t.name] = await concurrentPhase(t);
    log(
      "wrangler dev inspector relay: one fast 10,000-token stream through its floor (it may not recover)",
    );
    relay = await relayProbe(primary.floor);
  }

  machine.loadavg_at_end = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const durationS = Math.round((Date.now() - T0) / 1000);
  await cleanupAll();
  for (const t of latencyTargets) t.agent.destroy();

  const m = measurements({
    stack,
    sets,
    latencyTargets,
    loadTargets,
    latency,
    throughput,
    portkey,
    firstStream,
    anon,
    user,
    anonOff,
    userOff,
    pipelineProbe,
    access,
  });
  const targetsMet = judgeTargets({
    m,
    sets,
    primary,
    memorySet,
    longStream,
    concurrent,
    admissions,
    budgetsAb,
  });
  const results: Results = {
    generated_at: new Date().toISOString(),
    duration_s: durationS,
    quick: QUICK,
    machine,
    plan: PLAN,
    request: `POST with the message "${SHORT}": 20 tokens from the fake upstream, no delay between them`,
    gateway_config: {
      environment:
        "development: production requires an https OPENAI_BASE_URL; SECRET_KEY, OPENAI_API_KEY and CF-Connecting-IP are given, so no development fallback is used and every limit runs",
      principal:
        "anonymous session tokens minted by each gateway (64 each): per-user and per-IP rate limits, then the anonymous quota; 'signed-in' rows use Supabase HS256 tokens (rate limits only)",
      limits:
        "RATE_LIMIT_USER/IP 1000000/30s, ANON_QUOTA_HOURLY 1000000, ANON_QUOTA_TOTAL 100000000: generous, so nothing is refused, but every check runs",
      budgets:
        "the defaults (BUDGET_USER_DAILY_USD 1.00, BUDGET_ANON_DAILY_USD 0.05, BUDGET_ANON_HOURLY_USD 2.00, BUDGET_GLOBAL_HOURLY_USD 20.00, BUDGET_SHARDS 8) on every gateway but the `budgets-off` ones (all four 0); each stream holds its worst case and settles it",
      client_ip: "CF-Connecting-IP from 198.18.0.0/15, 32 addresses",
      runtimes: RUNTIMES,
    },
    peer,
    latency_rounds: latency.rounds,
    latency: m.lat,
    overhead_ms: m.overhead,
    throughput: m.tput,
    store: m.store,
    memory: {
      runtime: memorySet?.title ?? null,
      long_stream: longStream,
      concurrent,
      wrangler_dev_relay_probe: relay,
    },
    budgets_on_against_off: budgetsAb,
    admissions,
    targets: targetsMet,
    ...(route ? { route_against_default: route } : {}),
    ...(resume ? { resume_off_against_on: resume } : {}),
  };
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(join(OUT_DIR, "latest.json"), `${JSON.stringify(results, null, 2)}\n`);
  const md =
    markdown(results, { latencyTargets, loadTargets, sets, memorySet }) +
    (route ? `\n${routeMarkdown(route)}` : "") +
    (resume ? `\n${resumeMarkdown(resume)}` : "");
  writeFileSync(join(OUT_DIR, "latest.md"), md);
  console.log(`\n${md}`);
  log(`wrote ${join(OUT_DIR, "latest.json")} and latest.md`);
}

runMain(main);
