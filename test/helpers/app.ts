/** @module Calls the Worker inside workerd with a chosen env, and waits for its waitUntil work. */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { Bindings } from "../../src/env";
import worker from "../../src/index";

/** The test env from vitest.config.ts, with overrides. A new object means a freshly parsed config. */
export function testEnv(
  overrides: Partial<Record<keyof Bindings, string | undefined>> = {},
): Bindings {
  return { ...(env as unknown as Bindings), ...overrides } as Bindings;
}

export interface Called {
  res: Response;
  /** Resolves when every `waitUntil` promise of the request has settled. */
  settled: () => Promise<void>;
}

/** Sends one request to the app with `bindings`; the response is returned as soon as it exists. */
export async function call(
  path: string,
  init: RequestInit & { ip?: string | null } = {},
  bindings: Bindings = testEnv(),
): Promise<Called> {
  const headers = new Headers(init.headers);
  if (init.ip !== null && !headers.has("CF-Connecting-IP"))
    headers.set("CF-Connecting-IP", init.ip ?? "198.51.100.7");
  const ctx = createExecutionContext();
  const res = await worker.fetch(
    new Request(`http://gateway.test${path}`, { ...init, headers }),
    bindings,
    ctx,
  );
  return { res, settled: () => waitOnExecutionContext(ctx) };
}

/** Reads a JSON error or result body. */
export async function json<T = Record<string, unknown>>(res: Response): Promise<T> {
  return (await res.json()) as T;
}
