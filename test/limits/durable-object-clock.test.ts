/**
 * @module The limits Durable Object's time: each method takes it from its caller, and one that
 * comes without (a Worker of the previous version, during a gradual deployment) gets the
 * object's own clock, never NaN, so a window still refuses past its limit.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Bindings } from "../../src/env";
import type { LimitsStore } from "../../src/limits/durable-object";

const spec = { limit: 3, windowMs: 60_000 };

function object(): DurableObjectStub<LimitsStore> {
  const ns = (env as unknown as Bindings).LIMITS as unknown as DurableObjectNamespace<LimitsStore>;
  return ns.get(ns.idFromName(`clock-test:${crypto.randomUUID()}`));
}

describe("the limits object's clock", () => {
  it("refuses past the limit when a caller sends no time, as when it sends one", async () => {
    const withTime = object();
    const without = object();
    const now = Date.now();
    const timed: boolean[] = [];
    const untimed: boolean[] = [];
    for (let i = 0; i < 5; i++) {
      timed.push((await withTime.hit("rate:user", spec, now)).success);
      // An older caller's call: no time at all.
      untimed.push(
        (
          await (
            without.hit as unknown as (n: string, s: typeof spec) => Promise<{ success: boolean }>
          )("rate:user", spec)
        ).success,
      );
    }
    expect(timed).toEqual([true, true, true, false, false]);
    expect(untimed).toEqual(timed);
    // What it reads back without a time is what it counted, not an empty window.
    const read = await (
      without.read as unknown as (
        n: string,
        s: typeof spec,
      ) => Promise<{ remaining: number; success: boolean }>
    )("rate:user", spec);
    expect(read.remaining).toBe(0);
  });
});
