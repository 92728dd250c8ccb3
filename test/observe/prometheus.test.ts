/**
 * @module Prometheus text: each family's HELP, TYPE and samples together (the exposition format
 * wants it; promtool 2.42 does not catch interleaving, so it is checked here), and costs printed
 * as plain decimals in both views. promtool itself runs in test/e2e/wrangler-dev.e2e.test.ts.
 */
import { describe, expect, it } from "vitest";
import { type Counters, countersFor, prometheus, summarise } from "../../src/observe/metrics";

/** Counters of a few requests: streams with tokens and cost, errors, latencies. */
function someCounters(): Counters {
  const c: Counters = {};
  const add = (m: Parameters<typeof countersFor>[0]) => {
    for (const [k, v] of Object.entries(countersFor(m))) c[k] = (c[k] ?? 0) + v;
  };
  add({
    status: 200,
    stream: true,
    storeMs: 3,
    upstreamTtfbMs: 40,
    finishReason: "stop",
    inputTokens: 9,
    outputTokens: 5,
    costMicroUsd: 15,
  });
  add({ status: 429, errorCode: "rate_limited", storeMs: 2 });
  add({
    status: 200,
    stream: true,
    storeMs: 7,
    finishReason: "cost_cap",
    inputTokens: 3,
    outputTokens: 1,
    costMicroUsd: 2,
  });
  return c;
}

/**
 * The family a line belongs to: the HELP/TYPE name, or the sample's name (a histogram's
 * `_bucket`, `_count` and `_sum` samples belong to the histogram's family).
 */
function familyOf(line: string, histograms: Set<string>): string {
  const comment = /^# (?:HELP|TYPE) (\S+)/.exec(line);
  if (comment?.[1]) return comment[1];
  const name = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line)?.[1] ?? line;
  const base = name.replace(/_(bucket|count|sum)$/, "");
  return histograms.has(base) ? base : name;
}

describe("the Prometheus view", () => {
  it("keeps each family's lines together, TYPE before its samples", () => {
    const text = prometheus({ minute: someCounters(), hour: someCounters(), day: someCounters() });
    const lines = text.trimEnd().split("\n");
    const histograms = new Set(lines.flatMap((l) => /^# TYPE (\S+) histogram$/.exec(l)?.[1] ?? []));
    const done = new Set<string>();
    let current = "";
    const typed = new Set<string>();
    for (const line of lines) {
      const family = familyOf(line, histograms);
      if (family !== current) {
        expect(done.has(family), `${family} appears again after other families`).toBe(false);
        if (current) done.add(current);
        current = family;
      }
      if (line.startsWith("# TYPE ")) typed.add(family);
      else if (!line.startsWith("#"))
        expect(typed.has(family), `${family} sampled before TYPE`).toBe(true);
    }
    expect(typed).toContain("magicbox_streams_started");
    expect(typed).toContain("magicbox_tokens");
    expect(typed).toContain("magicbox_cost_usd");
    expect(histograms).toEqual(
      new Set(["magicbox_store_latency_seconds", "magicbox_upstream_ttfb_seconds"]),
    );
  });

  it("prints costs as plain decimals, never in exponent notation", () => {
    for (const micro of [1, 15, 999, 123_456, 1_000_000_123]) {
      const c = { ...someCounters(), cost_micro_usd: micro };
      const json = JSON.stringify(summarise(c));
      expect(json).not.toMatch(/\d[eE][-+]?\d/);
      expect(prometheus({ minute: c })).not.toMatch(/cost_usd\{[^}]*\} \S*[eE]/);
    }
    expect(JSON.stringify(summarise({ cost_micro_usd: 15 }).cost_usd)).toBe("0.000015");
  });
});
