/**
 * @module A sampling CPU profile of a Worker's isolate through the V8 inspector (Chrome DevTools
 * Protocol `Profiler`), summed by function: where the Worker's own time goes under load. Needs a
 * runtime whose inspector nobody else holds (the `miniflare` runtime).
 */
import { inspectorSocket } from "./inspector";

/** One function's share of the samples: self time (its own code) and total (with callees). */
export interface ProfileLine {
  fn: string;
  selfPct: number;
  totalPct: number;
}

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

/** Starts profiling the user Worker's isolate on inspector `port`; `stop()` returns the summary. */
export async function startCpuProfile(
  port: number,
  intervalUs = 100,
): Promise<{
  stop(top?: number): Promise<{ samples: number; bySelf: ProfileLine[]; byTotal: ProfileLine[] }>;
}> {
  const ws = await inspectorSocket(port);
  let next = 0;
  const pending = new Map<number, (r: Record<string, unknown>) => void>();
  ws.addEventListener("message", (event) => {
    const msg = JSON.parse(String(event.data)) as { id?: number; result?: Record<string, unknown> };
    if (msg.id !== undefined) pending.get(msg.id)?.(msg.result ?? {});
  });
  const call = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const id = ++next;
      pending.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: intervalUs });
  await call("Profiler.start");
  return {
    async stop(top = 25) {
      const { profile } = (await call("Profiler.stop")) as {
        profile: { nodes: CpuProfileNode[]; samples: number[] };
      };
      ws.close();
      return summarizeProfile(profile.nodes, profile.samples, top);
    },
  };
}

/** Self and total sample shares by function (name and source position), biggest self first. */
export function summarizeProfile(nodes: CpuProfileNode[], samples: number[], top: number) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const key = (n: CpuProfileNode) =>
    `${n.callFrame.functionName || "(anonymous)"} ${n.callFrame.url.replace(/^.*\//, "")}:${n.callFrame.lineNumber + 1}`;
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  for (const id of samples) {
    const leaf = byId.get(id);
    if (!leaf) continue;
    self.set(key(leaf), (self.get(key(leaf)) ?? 0) + 1);
    const seen = new Set<string>();
    for (let n: CpuProfileNode | undefined = leaf; n; n = byId.get(parent.get(n.id) ?? -1)) {
      const k = key(n);
      if (!seen.has(k)) total.set(k, (total.get(k) ?? 0) + 1);
      seen.add(k);
    }
  }
  const pct = (x: number) => Math.round((x / Math.max(1, samples.length)) * 1000) / 10;
  const all = [...total.keys()].map((fn) => ({
    fn,
    selfPct: pct(self.get(fn) ?? 0),
    totalPct: pct(total.get(fn) ?? 0),
  }));
  const bySelf = [...all].sort((a, b) => b.selfPct - a.selfPct).slice(0, top);
  const byTotal = [...all].sort((a, b) => b.totalPct - a.totalPct).slice(0, top);
  return { samples: samples.length, bySelf, byTotal };
}
