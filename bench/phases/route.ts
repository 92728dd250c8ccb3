/**
 * @module A two-target route against the default registry, paired (`--route`, or alone with
 * `--route-only`): one more Upstash gateway whose PROVIDERS/MODELS make `gpt-4o-mini` a route of
 * two `openai` targets on the fake upstream (at the built-in model's prices, so the hold and
 * `max_tokens` are the same), whose first target answers. Rounds of one request each to the
 * floor, the default gateway and the route gateway, in a fresh random order, give the first
 * token over the floor per round; closed loops give CPU per stream of each gateway's workerd.
 */
import { agentFor } from "../lib/client";
import { gatewayVars, mintTokens, ROOT, type Stack } from "../lib/stack";
import { fmt, meanOf, table } from "../lib/stats";
import { startWranglerDev } from "../lib/wrangler";
import { type BenchTarget, PLAN, QUICK, RUN, SHORT, send } from "./common";
import { closedLoop, cpuPerStream } from "./load";
import { paired, pairedTtft } from "./paired";
import type { RuntimeSet } from "./runtime-set";

const argv = process.argv.slice(2);
/** `--route-rounds n`: paired rounds (default: as many as the budgets' paired phase). */
const ROUNDS = (() => {
  const i = argv.indexOf("--route-rounds");
  const n = i >= 0 ? Number(argv[i + 1]) : Number.NaN;
  return Number.isInteger(n) && n > 0 ? n : PLAN.abRounds;
})();
const LOOP = { concurrency: 16, ms: QUICK ? 600 : 1_000, reps: QUICK ? 1 : 3 };

/** PROVIDERS and MODELS of the route gateway: `first` answers, `second` is the fallback. */
export function routeVars(stack: Stack): Record<string, string> {
  const provider = {
    type: "openai",
    base_url: `${stack.upstreamUrl}/v1`,
    api_keys: ["OPENAI_API_KEY"],
  };
  return {
    PROVIDERS: JSON.stringify({ first: provider, second: provider }),
    MODELS: JSON.stringify({
      "gpt-4o-mini": {
        route: [
          { provider: "first", model: "gpt-4o-mini" },
          { provider: "second", model: "gpt-4o-mini" },
        ],
        input_usd_per_million: 0.15,
        output_usd_per_million: 0.6,
      },
    }),
  };
}

/** Which provider and upstream model a stream of `t` was answered by (from its `done`). */
async function answeredBy(t: BenchTarget): Promise<string> {
  const res = await fetch(`${t.url}/api/v1/stream`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${t.tokens?.[0]}`,
      "content-type": "application/json",
      "cf-connecting-ip": "198.18.201.1",
    },
    body: JSON.stringify({ message: SHORT }),
  });
  const done = /event: done\ndata: (.*)/.exec(await res.text())?.[1];
  const d = done ? (JSON.parse(done) as { provider?: string; upstream_model?: string }) : {};
  return `${d.provider ?? "?"}/${d.upstream_model ?? "?"}`;
}

/** Starts the route gateway beside `set`'s and measures both, paired. */
export async function routePhase(stack: Stack, set: RuntimeSet) {
  const dev = await startWranglerDev({
    name: `${set.runtime}-gateway-route`,
    runtime: set.runtime,
    root: ROOT,
    vars: gatewayVars(stack, {
      prefix: `b${RUN}r`,
      scope: `${set.scope}-route`,
      extra: routeVars(stack),
    }),
  });
  const route: BenchTarget = {
    name: `${set.runtime}/gateway-upstash-route`,
    label: `${set.title}: gateway, Upstash store, anonymous, two-target route`,
    kind: "worker",
    runtime: set.runtime,
    url: dev.url,
    agent: agentFor(256),
    dev,
    next: 0,
    tokens: await mintTokens(dev.url, 64, "198.18.200.1"),
  };
  const answered = await answeredBy(route);
  const targets = [set.floor, set.gwUp, route];
  for (const t of targets) {
    for (let i = 0; i < PLAN.warmupPerTarget; i++) await send(t, SHORT);
    await closedLoop(t, 16, 300);
  }
  const { rounds, of } = await pairedTtft(targets, ROUNDS, PLAN.abMaxMs);
  // Alternating, so drift in the machine's load falls on both alike.
  const cpu = { default: [] as (number | null)[], route: [] as (number | null)[] };
  for (let i = 0; i < 2; i++) {
    cpu.default.push((await cpuPerStream(set.gwUp, LOOP)).ms);
    cpu.route.push((await cpuPerStream(route, LOOP)).ms);
  }
  await dev.stop();
  route.agent.destroy();
  return {
    runtime: set.title,
    answered_by: answered,
    rounds,
    /** Per-round time to first token over the floor's of the same round, ms. */
    over_floor: {
      default_registry: paired(of(set.gwUp), of(set.floor)),
      two_target_route: paired(of(route), of(set.floor)),
    },
    /** Per-round time to first token of the route minus the default registry's, ms. */
    route_minus_default: paired(of(route), of(set.gwUp)),
    cpu_ms_per_stream: {
      concurrency: LOOP.concurrency,
      default_registry: meanOf(cpu.default),
      two_target_route: meanOf(cpu.route),
    },
  };
}

/** What the route phase returns. */
export type RouteAb = Awaited<ReturnType<typeof routePhase>>;

/** The phase as a markdown section. */
export function routeMarkdown(r: RouteAb): string {
  const q = (x: { p25: number | null; p50: number | null; p75: number | null }) =>
    `${fmt(x.p50, 2)} (${fmt(x.p25, 2)} to ${fmt(x.p75, 2)})`;
  return [
    "## Two-target route against the default registry",
    "",
    `${r.runtime}, ${r.rounds} paired rounds; the route's streams were answered by \`${r.answered_by}\`.`,
    "First token over the floor: median of per-round differences, ms (25th to 75th percentile).",
    "",
    table(
      [
        "registry",
        "first token over the floor, ms",
        `CPU per stream (c=${r.cpu_ms_per_stream.concurrency}), ms`,
      ],
      [
        [
          "default (built-in)",
          q(r.over_floor.default_registry),
          fmt(r.cpu_ms_per_stream.default_registry, 3),
        ],
        [
          "two-target route",
          q(r.over_floor.two_target_route),
          fmt(r.cpu_ms_per_stream.two_target_route, 3),
        ],
      ],
    ),
    "",
    `Route minus default, paired: ${q(r.route_minus_default)} ms.`,
    "",
  ].join("\n");
}
