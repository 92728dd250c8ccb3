/** @module Per-provider metrics: what each target served and how it failed. */
import { describe, expect, it } from "vitest";
import { call } from "../helpers/app";
import { anonCaller, postAs } from "../helpers/gate";
import { A, B, env } from "../helpers/providers";
import { bearer } from "../helpers/tokens";

describe("per-provider metrics", () => {
  it("count attempts, fallbacks and breaker skips per provider, in JSON and Prometheus", async () => {
    const METRICS_TOKEN = "metrics-token-for-tests-0123456789";
    const routes = env({
      METRICS_TOKEN,
      STORE_PREFIX: `p${crypto.randomUUID().slice(0, 8)}`,
      PROVIDERS: JSON.stringify({
        a: { type: "openai", base_url: `${A}/v1` },
        b: { type: "openai", base_url: `${B}/v1` },
      }),
      MODELS: JSON.stringify({
        ab: {
          route: [
            { provider: "a", model: "ma" },
            { provider: "b", model: "mb" },
          ],
          input_usd_per_million: 1,
          output_usd_per_million: 1,
        },
      }),
      ANON_MODELS: "ab",
    });
    // Three fallbacks open a's breaker; the fourth request skips it.
    for (let i = 0; i < 4; i++) {
      const who = await anonCaller();
      const { res, settled } = await postAs(
        who,
        "/api/v1/stream",
        { message: "x [[fake a.status=500 tokens=1]]", model: "ab" },
        routes,
      );
      await res.text();
      await settled();
    }
    const { res } = await call("/api/v1/metrics", { headers: bearer(METRICS_TOKEN) }, routes);
    const body = (await res.json()) as { providers: { minute: Record<string, unknown> } };
    expect(body.providers.minute).toEqual({
      a: { attempts: 3, fallbacks: 3, breaker_skips: 1 },
      b: { attempts: 4, fallbacks: 0, breaker_skips: 0 },
    });
    const prom = await (
      await call(
        "/api/v1/metrics",
        { headers: { ...bearer(METRICS_TOKEN), Accept: "text/plain" } },
        routes,
      )
    ).res.text();
    expect(prom).toContain('magicbox_upstream_fallbacks{window="minute",provider="a"} 3');
    expect(prom).toContain('magicbox_upstream_breaker_skips{window="minute",provider="a"} 1');
    expect(prom).toContain('magicbox_upstream_attempts{window="minute",provider="b"} 4');
  });
});
