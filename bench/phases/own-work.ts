/**
 * @module The gateway's own work, paired: rounds of one request each to the floor, the floor
 * plus one store round trip (an Upstash PING), the floor plus one trivial Durable Object call,
 * and the gateway on each store (and, with a base checkout, the same gateways built from it), in
 * a fresh random order each round, on the Workers runtime alone. Each round's differences cancel
 * the machine's drift in load. Then CPU per short stream in closed loops, against the floor's.
 */
import { agentFor, completed } from "../lib/client";
import { sleep } from "../lib/procs";
import { gatewayVars, mintTokens, ROOT, type Stack, UPSTASH_TOKEN } from "../lib/stack";
import { round } from "../lib/stats";
import { startWranglerDev, type WranglerDev } from "../lib/wrangler";
import { type BenchTarget, type Role, RUN, SHORT } from "./common";
import { cpuMs } from "./cpu";
import { closedLoop } from "./load";
import { paired, pairedTtft, quartiles } from "./paired";

/** The Workers compared; the `base*` ones exist only with a base checkout. */
export interface OwnWorkSet {
  floor: BenchTarget;
  floorTrip: BenchTarget;
  floorDoTrip: BenchTarget;
  floorDoWrite: BenchTarget;
  gateways: { store: "do" | "upstash"; tree: "head" | "base"; target: BenchTarget }[];
  devs: WranglerDev[];
}

const target = (name: string, dev: WranglerDev, path = "", tokens?: string[]): BenchTarget => ({
  name,
  label: name,
  kind: tokens ? "worker" : "floor",
  runtime: "miniflare",
  role: (tokens ? "gateway-do" : "floor") as Role,
  url: `${dev.url}${path}`,
  agent: agentFor(256),
  dev,
  next: 0,
  ...(tokens ? { tokens } : {}),
});

/** Starts the floor and the gateways of `stores`, from this tree and from `base` if given. */
export async function startOwnWork(
  stack: Stack,
  stores: ("do" | "upstash")[],
  base: string | null,
  baseVars: Record<string, string> = {},
): Promise<OwnWorkSet> {
  const trees = base
    ? ([
        ["head", ROOT],
        ["base", base],
      ] as const)
    : ([["head", ROOT]] as const);
  const floorDev = await startWranglerDev({
    name: "ow-floor",
    runtime: "miniflare",
    root: ROOT,
    config: "bench/floor/wrangler.toml",
    vars: {
      UPSTREAM_URL: `${stack.upstreamUrl}/v1`,
      STORE_URL: `${stack.upstashUrl}/__scope/ow-${RUN}-floor`,
      STORE_TOKEN: UPSTASH_TOKEN,
    },
  });
  const plans = stores.flatMap((store) => trees.map(([tree, root]) => ({ store, tree, root })));
  const devs = await Promise.all(
    plans.map((p) =>
      startWranglerDev({
        name: `ow-${p.store}-${p.tree}`,
        runtime: "miniflare",
        root: p.root,
        vars: gatewayVars(stack, {
          prefix: `ow${RUN}${p.store}${p.tree}`,
          ...(p.store === "upstash" ? { scope: `ow-${RUN}-${p.tree}` } : {}),
          ...(p.tree === "base" ? { extra: baseVars } : {}),
        }),
      }),
    ),
  );
  const gateways = await Promise.all(
    plans.map(async (p, i) => {
      const dev = devs[i] as WranglerDev;
      const tokens = await mintTokens(dev.url, 64, "198.18.200.1");
      return {
        store: p.store,
        tree: p.tree,
        target: target(`${p.store}/${p.tree}`, dev, "", tokens),
      };
    }),
  );
  return {
    floor: target("floor", floorDev),
    floorTrip: target("floor-store-trip", floorDev, "/store-trip"),
    floorDoTrip: target("floor-do-trip", floorDev, "/do-trip"),
    floorDoWrite: target("floor-do-write-trip", floorDev, "/do-write-trip"),
    gateways,
    devs: [floorDev, ...devs],
  };
}

/** The floors, then the gateways. */
export const everyTarget = (set: OwnWorkSet): BenchTarget[] => [
  set.floor,
  set.floorTrip,
  set.floorDoTrip,
  set.floorDoWrite,
  ...set.gateways.map((g) => g.target),
];

/** Paired rounds of every target; returns the per-round differences that matter, as quartiles. */
export async function pairedRounds(set: OwnWorkSet, rounds: number, maxMs: number) {
  const all = everyTarget(set);
  // The limit stage's store call as each gateway's access lines give it (whole ms).
  const storeMs = new Map<string, number[]>();
  const unsubscribe = set.gateways.map((g) => {
    const xs: number[] = [];
    storeMs.set(g.target.name, xs);
    return g.target.dev?.onLine((l) => {
      if (l.event === "request" && typeof l.store_ms === "number") xs.push(l.store_ms);
    });
  });
  const { rounds: n, of } = await pairedTtft(all, rounds, maxMs);
  const out: Record<string, ReturnType<typeof paired>> = {
    "floor-store-trip − floor": paired(of(set.floorTrip), of(set.floor)),
    "floor-do-trip − floor": paired(of(set.floorDoTrip), of(set.floor)),
    "floor-do-write-trip − floor-do-trip": paired(of(set.floorDoWrite), of(set.floorDoTrip)),
  };
  for (const g of set.gateways) {
    const trip = g.store === "do" ? set.floorDoTrip : set.floorTrip;
    out[`${g.target.name} − ${trip.name} (own work)`] = paired(of(g.target), of(trip));
  }
  for (const store of ["do", "upstash"] as const) {
    const head = set.gateways.find((g) => g.store === store && g.tree === "head");
    const base = set.gateways.find((g) => g.store === store && g.tree === "base");
    if (head && base) out[`${store}: head − base`] = paired(of(head.target), of(base.target));
  }
  for (const off of unsubscribe) off?.();
  const store = Object.fromEntries([...storeMs].map(([k, xs]) => [k, quartiles(xs)]));
  return { rounds: n, paired_ttft_ms: out, store_ms: store };
}

/** CPU ms per stream (short unless `message` says) in closed loops at each concurrency, rotating order, and over the floor's. */
export async function cpuOverFloor(
  set: OwnWorkSet,
  concurrencies: number[],
  runMs: number,
  reps: number,
  message = SHORT,
) {
  const targets = everyTarget(set);
  const acc = new Map<string, { cpu: number; streams: number; ms: number }>();
  for (const [ci, c] of concurrencies.entries()) {
    for (let rep = 0; rep < reps; rep++) {
      const shift = ci * reps + rep;
      for (let j = 0; j < targets.length; j++) {
        const t = targets[(j + shift) % targets.length] as BenchTarget;
        const before = cpuMs(t);
        const { results, elapsedMs } = await closedLoop(t, c, runMs, message, {
          timeoutMs: 60_000,
        });
        const after = cpuMs(t);
        const k = `${t.name}@c${c}`;
        const slot = acc.get(k) ?? { cpu: 0, streams: 0, ms: 0 };
        slot.cpu += (after ?? 0) - (before ?? 0);
        slot.streams += results.filter(completed).length;
        slot.ms += elapsedMs;
        acc.set(k, slot);
        await sleep(150);
      }
    }
  }
  const out: Record<string, Record<string, number | null>> = {};
  for (const c of concurrencies) {
    const floor = acc.get(`floor@c${c}`);
    const floorPer = floor && floor.streams > 0 ? floor.cpu / floor.streams : null;
    for (const t of targets) {
      const s = acc.get(`${t.name}@c${c}`);
      const per = s && s.streams > 0 ? s.cpu / s.streams : null;
      out[`${t.name}@c${c}`] = {
        cpu_ms_per_stream: per === null ? null : round(per, 3),
        x_floor: per === null || floorPer === null ? null : round(per / floorPer, 2),
        streams_per_s: s ? round((s.streams / s.ms) * 1000, 1) : null,
      };
    }
  }
  return out;
}
