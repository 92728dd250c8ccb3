/**
 * @module `npm run bench -- --resume-only`: the resumable-streams phase alone, on the Workers
 * runtime alone (a floor, and per store a gateway with resume off and one with it on), without
 * the rest of the bench. Writes resume-latest.json and resume-latest.md.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { agentFor } from "../lib/client";
import { cleanupAll } from "../lib/procs";
import { machineInfo, ROOT, startStack, UPSTASH_TOKEN } from "../lib/stack";
import { startWranglerDev } from "../lib/wrangler";
import { type BenchTarget, log, OUT_DIR, QUICK, RUN } from "./common";
import { resumePhase } from "./resume";
import { resumeMarkdown } from "./resume-markdown";

/** Runs the resume phase alone and writes its results. */
export async function resumeOnly(): Promise<void> {
  const machine = await machineInfo();
  const stack = await startStack();
  log("resume only: the floor of the Workers runtime alone");
  const dev = await startWranglerDev({
    name: "mf-floor",
    runtime: "miniflare",
    root: ROOT,
    config: "bench/floor/wrangler.toml",
    vars: {
      UPSTREAM_URL: `${stack.upstreamUrl}/v1`,
      STORE_URL: `${stack.upstashUrl}/__scope/bench-${RUN}-floor`,
      STORE_TOKEN: UPSTASH_TOKEN,
    },
  });
  const title = "Workers runtime alone";
  const floor: BenchTarget = {
    name: "miniflare/floor",
    label: `${title}: floor (bare re-framing Worker)`,
    kind: "floor",
    runtime: "miniflare",
    role: "floor",
    url: dev.url,
    agent: agentFor(256),
    dev,
    next: 0,
  };
  log("resume: off against on, per store, paired");
  const resume = await resumePhase(stack, { runtime: "miniflare", title, floor });
  machine.loadavg_at_end = os.loadavg().map((x) => Math.round(x * 100) / 100);
  await cleanupAll();
  floor.agent.destroy();
  mkdirSync(OUT_DIR, { recursive: true });
  const results = { generated_at: new Date().toISOString(), quick: QUICK, machine, resume };
  writeFileSync(join(OUT_DIR, "resume-latest.json"), `${JSON.stringify(results, null, 2)}\n`);
  const md = resumeMarkdown(resume);
  writeFileSync(join(OUT_DIR, "resume-latest.md"), md);
  console.log(`\n${md}`);
  log(`wrote ${join(OUT_DIR, "resume-latest.json")} and resume-latest.md`);
}
