/**
 * @module `npm run bench:own-work`: the gateway's own work over the floor plus one round trip to
 * its store, in paired rounds on the Workers runtime alone, optionally against a base checkout
 * (`--base <dir>`, a worktree whose node_modules resolves), then CPU per short stream against
 * the floor's, and with `--profile` a sampling CPU profile of each gateway under load.
 * Flags: --rounds <n> (300), --store do|upstash|both, --skip-cpu, --cpu-ms <ms per loop> (1000),
 * --cpu-reps <n> (2), --long (CPU per 2,000-token stream too, at c=16), --profile,
 * --profile-c <concurrency> (16), --base <dir> (`.`: this tree again), --base-var KEY=VALUE
 * (repeatable: a var of the base's gateways only, so `--base . --base-var
 * STREAM_RESUME_TTL_S=0` pairs a feature on against off), --out <dir> (or --update-results).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join, resolve } from "node:path";
import { cleanupAll, installCleanupHandlers, runMain } from "./lib/procs";
import { startCpuProfile } from "./lib/profiler";
import { resultsDir } from "./lib/results-dir";
import { startStack } from "./lib/stack";
import { stateRoot } from "./lib/wrangler";
import { log, SHORT, send } from "./phases/common";

/** A 2,000-token stream, as the resume phase sends it. */
const LONG = "A long answer please [[fake tokens=2000 delay=0 ignoremax=1]]";

import { closedLoop } from "./phases/load";
import { cpuOverFloor, everyTarget, pairedRounds, startOwnWork } from "./phases/own-work";

installCleanupHandlers();
const argv = process.argv.slice(2);
const flag = (name: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? (argv[i + 1] ?? null) : null;
};

async function main(): Promise<void> {
  const rounds = Number(flag("--rounds") ?? 300);
  const store = flag("--store") ?? "both";
  const stores =
    store === "both" ? (["do", "upstash"] as const) : ([store] as ("do" | "upstash")[]);
  const baseFlag = flag("--base");
  const base = baseFlag === null ? null : resolve(baseFlag);
  const baseVars = Object.fromEntries(
    argv.flatMap((a, i) =>
      a === "--base-var" && argv[i + 1]?.includes("=")
        ? [[argv[i + 1]?.split("=")[0], argv[i + 1]?.split("=").slice(1).join("=")]]
        : [],
    ),
  ) as Record<string, string>;
  const load0 = os.loadavg();
  const stack = await startStack();
  log(
    `starting the floor and the gateways (${stores.join(", ")})${base ? ` and base ${base}` : ""}`,
  );
  const set = await startOwnWork(stack, [...stores], base, baseVars);
  const every = everyTarget(set);
  log("warm-up");
  for (const t of every) {
    for (let i = 0; i < 25; i++) await send(t, SHORT);
    await closedLoop(t, 16, 300);
  }
  log(`paired rounds: up to ${rounds}`);
  const ttft = await pairedRounds(set, rounds, rounds * 1_000);
  log(`paired rounds: ${ttft.rounds}`);
  const cpuReps = Number(flag("--cpu-reps") ?? 2);
  const cpu = argv.includes("--skip-cpu")
    ? null
    : await cpuOverFloor(set, [16, 64], Number(flag("--cpu-ms") ?? 1_000), cpuReps);
  // With --long, 2,000-token streams too (the floor's too), at c=16.
  const cpuLong = argv.includes("--long")
    ? await cpuOverFloor(set, [16], Number(flag("--cpu-ms") ?? 1_000) * 3, cpuReps, LONG)
    : null;
  const profiles: Record<string, unknown> = {};
  if (argv.includes("--profile")) {
    for (const t of [set.floor, ...set.gateways.map((g) => g.target)]) {
      const port = t.dev?.inspectorPort;
      if (!port) continue;
      const profile = await startCpuProfile(port);
      await closedLoop(t, Number(flag("--profile-c") ?? 16), 3_000);
      profiles[t.name] = await profile.stop(30);
    }
  }
  const result = {
    generated_at: new Date().toISOString(),
    cores: os.cpus().length,
    state_dir: stateRoot(),
    loadavg: { start: load0.map((x) => round2(x)), end: os.loadavg().map((x) => round2(x)) },
    ...ttft,
    cpu,
    cpu_2000_tokens: cpuLong,
    profiles,
  };
  await cleanupAll();
  // Like every bench script: bench/results/local unless --update-results, or --out <dir>.
  const out = join(
    resultsDir(process.argv.slice(2), process.env.BENCH_ROOT ?? "."),
    "own-work.json",
  );
  mkdirSync(join(out, ".."), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result, null, 2));
  log(`wrote ${out}`);
}

const round2 = (x: number) => Math.round(x * 100) / 100;

runMain(main);
