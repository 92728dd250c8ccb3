/**
 * @module The Workers the bench runs under one runtime: the floor (bare, and with one store round
 * trip first, and with one trivial Durable Object call first), the gateway on the Upstash store with budgets on (the defaults) and off (all four
 * BUDGET_* "0"), and the gateway on the Durable Object store.
 */
import { agentFor } from "../lib/client";
import {
  gatewayVars,
  mintTokens,
  ROOT,
  type Stack,
  supabaseToken,
  UPSTASH_TOKEN,
} from "../lib/stack";
import { type Runtime, startWranglerDev, type WranglerDev } from "../lib/wrangler";
import { type BenchTarget, type Role, RUN } from "./common";

/** All four budgets off. */
export const BUDGETS_OFF = {
  BUDGET_USER_DAILY_USD: "0",
  BUDGET_ANON_DAILY_USD: "0",
  BUDGET_ANON_HOURLY_USD: "0",
  BUDGET_GLOBAL_HOURLY_USD: "0",
};

/** The Workers of one runtime, as bench targets. */
export interface RuntimeSet {
  runtime: Runtime;
  title: string;
  /** The local Upstash server's scope of the Upstash gateway with budgets on. */
  scope: string;
  /** The same for the gateway with budgets off. */
  offScope: string;
  floor: BenchTarget;
  /** The floor with one store round trip first: the least a gateway that enforces limits pays. */
  floorTrip: BenchTarget;
  /** The floor with one call of a trivial Durable Object method first: the Durable Object store's least. */
  floorDoTrip: BenchTarget;
  gwUp: BenchTarget;
  gwUser: BenchTarget;
  /** The Upstash gateway with every budget off: anonymous, and signed-in. */
  gwUpOff: BenchTarget;
  gwUserOff: BenchTarget;
  gwDo: BenchTarget;
}

/** Starts the Workers of `runtime` and mints their tokens. */

export async function startRuntimeSet(
  stack: Stack,
  runtime: Runtime,
  title: string,
): Promise<RuntimeSet> {
  const tag = runtime === "wrangler-dev" ? "wd" : runtime === "no-inspector" ? "ni" : "mf";
  const scope = `bench-${RUN}-${tag}`;
  const offScope = `${scope}-off`;
  const [floorDev, upDev, offDev, doDev] = await Promise.all([
    startWranglerDev({
      name: `${tag}-floor`,
      runtime,
      root: ROOT,
      config: "bench/floor/wrangler.toml",
      vars: {
        UPSTREAM_URL: `${stack.upstreamUrl}/v1`,
        STORE_URL: `${stack.upstashUrl}/__scope/${scope}-floor`,
        STORE_TOKEN: UPSTASH_TOKEN,
      },
    }),
    startWranglerDev({
      name: `${tag}-gateway-upstash`,
      runtime,
      root: ROOT,
      vars: gatewayVars(stack, { prefix: `b${RUN}${tag}u`, scope }),
    }),
    startWranglerDev({
      name: `${tag}-gateway-upstash-budgets-off`,
      runtime,
      root: ROOT,
      vars: gatewayVars(stack, { prefix: `b${RUN}${tag}o`, scope: offScope, extra: BUDGETS_OFF }),
    }),
    startWranglerDev({
      name: `${tag}-gateway-do`,
      runtime,
      root: ROOT,
      vars: gatewayVars(stack, { prefix: `b${RUN}${tag}d` }),
    }),
  ]);
  const target = (
    role: Role,
    label: string,
    dev: WranglerDev,
    kind: "floor" | "worker",
    tokens?: string[],
  ): BenchTarget => ({
    name: `${runtime}/${role}`,
    label: `${title}: ${label}`,
    kind,
    runtime,
    role,
    url:
      role === "floor-store-trip"
        ? `${dev.url}/store-trip`
        : role === "floor-do-trip"
          ? `${dev.url}/do-trip`
          : dev.url,
    agent: agentFor(256),
    dev,
    next: 0,
    ...(tokens ? { tokens } : {}),
  });
  const userTokens = await Promise.all(Array.from({ length: 64 }, () => supabaseToken()));
  return {
    runtime,
    title,
    scope,
    offScope,
    floor: target("floor", "floor (bare re-framing Worker)", floorDev, "floor"),
    floorTrip: target("floor-store-trip", "floor plus one store round trip", floorDev, "floor"),
    floorDoTrip: target(
      "floor-do-trip",
      "floor plus one Durable Object round trip",
      floorDev,
      "floor",
    ),
    gwUp: target(
      "gateway-upstash",
      "gateway, Upstash store, anonymous",
      upDev,
      "worker",
      await mintTokens(upDev.url, 64, "198.18.200.1"),
    ),
    gwUser: target(
      "gateway-upstash-signed-in",
      "gateway, Upstash store, signed-in",
      upDev,
      "worker",
      userTokens,
    ),
    gwUpOff: target(
      "gateway-upstash-budgets-off",
      "gateway, Upstash store, anonymous, budgets off",
      offDev,
      "worker",
      await mintTokens(offDev.url, 64, "198.18.200.1"),
    ),
    gwUserOff: target(
      "gateway-upstash-signed-in-budgets-off",
      "gateway, Upstash store, signed-in, budgets off",
      offDev,
      "worker",
      userTokens,
    ),
    gwDo: target(
      "gateway-do",
      "gateway, Durable Object store, anonymous",
      doDev,
      "worker",
      await mintTokens(doDev.url, 64, "198.18.200.1"),
    ),
  };
}
