/** @module What the provider configuration tests share: the two fake upstreams, envs built from variables, and a one-model registry. */
import { inject } from "vitest";
import type { Bindings } from "../../src/env";
import type { UpstreamRecord } from "../support/upstream-record";
import { testEnv } from "./app";
import { SECRET_KEY } from "./tokens";

export const A = inject("upstreamAUrl");
export const B = inject("upstreamBUrl");

export async function seenBy(base: string, id: string): Promise<UpstreamRecord | null> {
  const res = await fetch(`${base}/__test/requests/${id}`);
  if (res.status === 404) {
    await res.body?.cancel();
    return null;
  }
  return (await res.json()) as UpstreamRecord;
}

export type Vars = Record<string, unknown>;
export const env = (vars: Vars) => ({ ...testEnv(), ...vars }) as Bindings;
/** A production env that passes every other check (https everywhere, strong tokens). */
export const production = (vars: Vars) =>
  env({
    ENVIRONMENT: "production",
    SECRET_KEY,
    SUPABASE_URL: "https://abcdefghijklmnop.supabase.co",
    SUPABASE_JWKS_URL: undefined,
    OPENAI_BASE_URL: "https://api.openai.com/v1",
    METRICS_TOKEN: "m".repeat(32),
    ...vars,
  });

export const ONE_MODEL = {
  m: {
    route: [{ provider: "p", model: "x" }],
    input_usd_per_million: 1,
    output_usd_per_million: 2,
  },
};
export const ONE_PROVIDER = {
  p: { type: "openai", base_url: "https://api.example/v1", api_keys: ["P_KEY"] },
};
