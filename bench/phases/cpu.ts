/**
 * @module CPU time of a Worker's workerd process (user plus system, from /proc), so a closed loop
 * can report CPU per stream: what the Worker and everything in its process (the Durable Objects
 * of the local runtime too) spent, whatever else the machine ran meanwhile.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { BenchTarget } from "./common";

const TICKS_PER_S = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU ms the process `pid` used so far, or null when it cannot be read. */
function processCpuMs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) in parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? (ticks * 1000) / TICKS_PER_S : null;
  } catch {
    return null;
  }
}

/** CPU ms of the workerd that runs `t`'s Worker so far (null for targets without one). */
export function cpuMs(t: BenchTarget): number | null {
  const pid = t.dev?.workerPid();
  return pid === undefined ? null : processCpuMs(pid);
}
