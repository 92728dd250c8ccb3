/**
 * @module `npm run bench -- --route-only`: the two-target route phase alone, on the Workers
 * runtime alone (the floor and the default Upstash gateway of one runtime set, plus the route
 * gateway), without the rest of the bench. Writes route-latest.json and route-latest.md.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanupAll } from "../lib/procs";
import { machineInfo, startStack } from "../lib/stack";
import { log, OUT_DIR, QUICK } from "./common";
import { routeMarkdown, routePhase } from "./route";
import { startRuntimeSet } from "./runtime-set";

/** Runs the route phase alone and writes its results. */
export async function routeOnly(): Promise<void> {
  const machine = await machineInfo();
  const stack = await startStack();
  log("route only: the floor and the gateways of the Workers runtime alone");
  const set = await startRuntimeSet(stack, "miniflare", "Workers runtime alone");
  log("route: the two-target route against the default registry, paired");
  const route = await routePhase(stack, set);
  await cleanupAll();
  mkdirSync(OUT_DIR, { recursive: true });
  const results = { generated_at: new Date().toISOString(), quick: QUICK, machine, route };
  writeFileSync(join(OUT_DIR, "route-latest.json"), `${JSON.stringify(results, null, 2)}\n`);
  const md = routeMarkdown(route);
  writeFileSync(join(OUT_DIR, "route-latest.md"), md);
  console.log(`\n${md}`);
  log(`wrote ${join(OUT_DIR, "route-latest.json")} and route-latest.md`);
}
