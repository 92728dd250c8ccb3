/**
 * @module Admissions per second of the Durable Object store, with the shared budgets on and off:
 * closed loops of one-token streams from many distinct anonymous identities and addresses (so
 * no one user object is the bottleneck), each admitted stream settled by its ledger write. On
 * the Workers runtime alone; locally every object runs in the one workerd process, so this shows
 * what the shared budgets' extra object calls cost, not how shards spread over machines.
 */
import { agentFor, completed, type StreamResult, streamRequest } from "../lib/client";
import { sleep } from "../lib/procs";
import { gatewayVars, mintTokens, ROOT, type Stack } from "../lib/stack";
import { round, summarize } from "../lib/stats";
import { startWranglerDev } from "../lib/wrangler";
import { type BenchTarget, ipFor, log, nowMs, PLAN, RUN, tally } from "./common";
import { cpuMs } from "./cpu";
import { BUDGETS_OFF } from "./runtime-set";

/** The store's configurations compared. */
const CONFIGS = [
  { key: "off", title: "budgets off (all four 0)", vars: BUDGETS_OFF },
  {
    key: "own",
    title: "own budget only (shared budgets 0)",
    vars: { BUDGET_ANON_HOURLY_USD: "0", BUDGET_GLOBAL_HOURLY_USD: "0" },
  },
  { key: "on", title: "all budgets on (defaults; shared ones over 8 shards)", vars: {} },
] as const;

const ONE_TOKEN = "Admit me [[fake tokens=1 delay=0]]";

/** One closed loop: `concurrency` clients, each with its own identity and address in turn. */
async function loop(t: BenchTarget, concurrency: number, ms: number) {
  const results: StreamResult[] = [];
  const tokens = t.tokens as string[];
  const start = nowMs();
  const cpu0 = cpuMs(t);
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (nowMs() < start + ms) {
        const i = t.next++;
        results.push(
          await streamRequest(t, {
            message: ONE_TOKEN,
            token: tokens[i % tokens.length],
            ip: ipFor(i % tokens.length),
            timeoutMs: 30_000,
          }),
        );
      }
    }),
  );
  const cpu1 = cpuMs(t);
  return { results, ms: nowMs() - start, cpu: cpu0 === null || cpu1 === null ? null : cpu1 - cpu0 };
}

/** Runs the comparison; every Worker it starts is stopped before it returns. */
export async function admissionsPhase(stack: Stack) {
  const devs = await Promise.all(
    CONFIGS.map((c) =>
      startWranglerDev({
        name: `mf-admissions-${c.key}`,
        runtime: "miniflare",
        root: ROOT,
        vars: gatewayVars(stack, { prefix: `b${RUN}adm${c.key}`, extra: { ...c.vars } }),
      }),
    ),
  );
  try {
    const targets: BenchTarget[] = [];
    for (const [k, c] of CONFIGS.entries()) {
      const dev = devs[k];
      if (!dev) throw new Error("a Worker did not start");
      const tokens = await mintTokens(dev.url, PLAN.admissionIdentities, "198.18.201.1");
      targets.push({
        name: `admissions/${c.key}`,
        label: c.title,
        kind: "worker",
        url: dev.url,
        agent: agentFor(256),
        dev,
        tokens,
        next: 0,
      });
    }
    for (const t of targets) await loop(t, 16, 500);
    const acc = new Map<string, { ms: number; cpu: number | null; results: StreamResult[] }>();
    for (const [ci, c] of PLAN.admissionConcurrencies.entries()) {
      for (let rep = 0; rep < PLAN.admissionReps; rep++) {
        const shift = ci * PLAN.admissionReps + rep;
        for (let j = 0; j < targets.length; j++) {
          const t = targets[(j + shift) % targets.length] as BenchTarget;
          const r = await loop(t, c, PLAN.admissionRunMs);
          const key = `${t.name}/c${c}`;
          const slot = acc.get(key) ?? { ms: 0, cpu: 0, results: [] };
          slot.ms += r.ms;
          slot.cpu = slot.cpu === null || r.cpu === null ? null : slot.cpu + r.cpu;
          slot.results.push(...r.results);
          acc.set(key, slot);
          await sleep(200);
        }
      }
      log(`admissions at concurrency ${c} done`);
    }
    for (const t of targets) t.agent.destroy();
    return CONFIGS.map((c) => {
      const row: Record<string, unknown> = { config: c.key, title: c.title };
      for (const conc of PLAN.admissionConcurrencies) {
        const s = acc.get(`admissions/${c.key}/c${conc}`);
        const ok = s?.results.filter(completed) ?? [];
        const headers = summarize(ok.map((r) => r.headersMs));
        row[`c${conc}`] = {
          admissions_per_s: s ? round((ok.length / s.ms) * 1000, 1) : null,
          completed: ok.length,
          errors: s ? tally(s.results) : {},
          headers_p50_ms: round(headers.p50, 2),
          headers_p95_ms: round(headers.p95, 2),
          cpu_ms_per_admission:
            s && s.cpu !== null && ok.length > 0 ? round(s.cpu / ok.length, 3) : null,
        };
      }
      return row;
    });
  } finally {
    await Promise.all(devs.map((d) => d.stop()));
  }
}

/** One configuration's admissions row. */
export type AdmissionsRow = Awaited<ReturnType<typeof admissionsPhase>>[number];
