/**
 * @module The soak's budget run, per store: thousands of streams with random client aborts
 * against tight budgets (every one of the four binds well before the load ends), then a drain of
 * whole streams until every shared budget is exhausted by settled spend. Checks that no budget
 * was overspent, what an exhausted budget leaves unused, and that every admitted stream was
 * settled exactly once (one ledger record each; held back to 0 everywhere).
 */
import { agentFor, type Target } from "../lib/client";
import { sleep } from "../lib/procs";
import {
  GENEROUS_LIMITS,
  gatewayVars,
  mintTokens,
  ROOT,
  type Stack,
  supabaseToken,
} from "../lib/stack";
import { type Runtime, startWranglerDev, type WranglerDev } from "../lib/wrangler";
import { judgeBudgetRun } from "./budget-judge";
import { budgetRequest } from "./budget-mix";
import {
  ADDRESSES,
  ANON_IDENTITIES,
  BUDGETS,
  type BudgetSent,
  type Caller,
  refusedBy,
  SIGNED_IN_USERS,
  settledOut,
} from "./budget-plan";
import { METRICS_TOKEN, readCallers, readSharedBudgets, readUpstashRecords } from "./budget-read";
import { readBills } from "./budget-served";

/** How the budget run is sized. */
export interface BudgetSoakOptions {
  streams: number;
  concurrency: number;
  runtime: Runtime;
  /** Unique per soak run: store prefixes and stream ids start with it. */
  run: string;
  log: (msg: string) => void;
}

/** Streams the drain sends at once, in rounds. */
const DRAIN_ROUND = 32;
const DRAIN_MAX_ROUNDS = 80;
/** The whole run of one store fits in one clock hour, so the hourly budgets do not reset midway. */
const NEEDS_MS_OF_THE_HOUR = 300_000;

/** Waits for the next clock hour when less than `NEEDS_MS_OF_THE_HOUR` of this one is left. */
async function sameHour(log: (msg: string) => void): Promise<void> {
  const left = 3_600_000 - (Date.now() % 3_600_000);
  if (left >= NEEDS_MS_OF_THE_HOUR) return;
  log(`budget: waiting ${Math.ceil(left / 1000)} s for the next clock hour`);
  await sleep(left + 2_000);
}

/**
 * Waits until the worker's stream_end lines (`ends()` counts them) stop growing for 2.5 s (at
 * most 30 s), then 1.5 s for its waitUntil work. Shared with the main soak (bench/soak.ts).
 */
export async function settle(ends: () => number): Promise<void> {
  let last = -1;
  let since = Date.now();
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const n = ends();
    if (n !== last) {
      last = n;
      since = Date.now();
    } else if (Date.now() - since > 2_500) break;
    await sleep(250);
  }
  // Ledger writes retry after 100 and 500 ms; the metrics flush runs once a second.
  await sleep(1_500);
}

/** Runs `count` requests with `concurrency` clients in a closed loop. */
async function closedLoop(
  count: number,
  concurrency: number,
  send: (i: number) => Promise<BudgetSent>,
): Promise<BudgetSent[]> {
  const sent: BudgetSent[] = [];
  let next = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count && Date.now() - started < 240_000) sent.push(await send(next++));
    }),
  );
  return sent;
}

/** Reads every budget back; retries while holds are still being settled (at most 10 s). */
async function readBack(dev: WranglerDev, callers: Caller[]) {
  const started = Date.now();
  for (;;) {
    const shared = await readSharedBudgets(dev.url);
    const own = await readCallers(dev.url, callers);
    const held =
      Object.values(shared).reduce((t, b) => t + b.held, 0) +
      own.reduce((t, c) => t + c.budget.held, 0);
    if (held === 0 || Date.now() - started > 10_000) {
      return { shared, own, waited_ms: Date.now() - started };
    }
    await sleep(1_000);
  }
}

/** The budget run against one store. */
export async function budgetSoak(stack: Stack, store: "upstash" | "do", o: BudgetSoakOptions) {
  await sameHour(o.log);
  const prefix = `bsoak${o.run}${store === "upstash" ? "u" : "d"}`;
  const dev = await startWranglerDev({
    name: `budget-soak-${store}`,
    runtime: o.runtime,
    root: ROOT,
    vars: {
      ...gatewayVars(stack, {
        prefix,
        ...(store === "upstash" ? { scope: `budget-soak-${o.run}` } : {}),
      }),
      ...GENEROUS_LIMITS,
      RATE_LIMIT_USAGE: "1000000/60s",
      // The worker finds a client gone at its next write: heartbeats this often let it see one
      // that left during a reasoning model's silence, so the upstream is cut while thinking.
      HEARTBEAT_INTERVAL_MS: "200",
      METRICS_TOKEN,
      ...BUDGETS,
    },
  });
  const startedAt = new Date().toISOString();
  const ledgerFailures: string[] = [];
  const ends = new Map<string, { lines: number; costMicro: number }>();
  const warnings: Record<string, number> = {};
  const causes: Record<string, string[]> = {};
  dev.onLine((line) => {
    if (line.level === "error" || line.level === "warn") {
      const k = `${line.level} ${line.event}${line.error_code ? ` ${line.error_code}` : ""}`;
      warnings[k] = (warnings[k] ?? 0) + 1;
      const seen = causes[k] ?? [];
      if (line.cause && seen.length < 3 && !seen.includes(String(line.cause))) {
        causes[k] = [...seen, String(line.cause).slice(0, 200)];
      }
    }
    if (line.event === "ledger_write_failed") ledgerFailures.push(String(line.cause));
    if (line.event === "stream_end" && typeof line.stream_id === "string") {
      const e = ends.get(line.stream_id) ?? { lines: 0, costMicro: 0 };
      e.lines++;
      e.costMicro += Math.round(Number(line.cost_usd ?? 0) * 1e6);
      ends.set(line.stream_id, e);
    }
  });
  const target: Target = { name: store, kind: "worker", url: dev.url, agent: agentFor(256) };
  try {
    const anonTokens = await mintTokens(dev.url, ANON_IDENTITIES, "198.19.255.3");
    const userTokens = await Promise.all(
      Array.from({ length: SIGNED_IN_USERS }, () => supabaseToken()),
    );
    const callers = {
      anon: anonTokens.map((token, index): Caller => ({ token, anonymous: true, index })),
      signedIn: userTokens.map((token, index): Caller => ({ token, anonymous: false, index })),
    };
    const everyone = [...callers.anon, ...callers.signedIn];
    const label = `bs-${o.run}-${store}`;

    o.log(`budget ${store}: ${o.streams} streams at concurrency ${o.concurrency}, random aborts`);
    const t0 = Date.now();
    const load = await closedLoop(o.streams, o.concurrency, (i) =>
      budgetRequest(target, callers, i, `${label}-L`, true),
    );
    const loadMs = Date.now() - t0;
    await settle(() => ends.size);
    const afterLoad = await readBack(dev, everyone);

    o.log(`budget ${store}: drain, whole streams until every shared budget is exhausted`);
    const drain: BudgetSent[] = [];
    let exhaustedRounds = 0;
    for (let round = 0; round < DRAIN_MAX_ROUNDS && exhaustedRounds < 2; round++) {
      const batch = await Promise.all(
        Array.from({ length: DRAIN_ROUND }, (_, k) =>
          budgetRequest(target, callers, round * DRAIN_ROUND + k, `${label}-D`, false),
        ),
      );
      drain.push(...batch);
      if (batch.every((s) => settledOut(s.r))) {
        exhaustedRounds++;
        // Let the last settlements land before the round that confirms it.
        await sleep(1_500);
      } else exhaustedRounds = 0;
    }
    await settle(() => ends.size);
    const afterDrain = await readBack(dev, everyone);
    const records =
      store === "upstash"
        ? (await readUpstashRecords(stack, prefix)).filter((r) => r.streamId.startsWith(label))
        : null;
    const bills = await readBills(stack.upstreamUrl, label);
    const verdict = judgeBudgetRun({
      store,
      startedAt,
      shards: store === "do" ? 8 : 1,
      load,
      loadMs,
      drain,
      drainExhausted: exhaustedRounds >= 2,
      afterLoad,
      afterDrain,
      callers: everyone,
      ends,
      records,
      ledgerFailures: ledgerFailures.length,
      refusedBy,
      addresses: ADDRESSES.length,
      bills,
    });
    return { ...verdict, worker_warnings: warnings, worker_warning_causes: causes };
  } finally {
    await dev.stop();
    target.agent.destroy();
  }
}
