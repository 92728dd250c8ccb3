/** @module Provider health per isolate: the breaker (a pinned clock) and key rotation. */
import { describe, expect, it } from "vitest";
import { BREAKER_OPEN_MS, KEY_COOLDOWN_MS } from "../../../src/stream/providers/health";
import { routeProvider } from "../../../src/stream/providers/route";
import { parseRegistry } from "../../../src/stream/registry";
import { A, B, seenBy } from "../../helpers/providers";

function clocked(keys: string[] = []) {
  let t = 1_000_000;
  const registry = parseRegistry(
    {
      PROVIDERS: {
        a: { type: "openai", base_url: `${A}/v1`, api_keys: keys.map((_, i) => `K${i}`) },
        b: { type: "openai", base_url: `${B}/v1` },
      },
      MODELS: {
        ab: {
          route: [
            { provider: "a", model: "ma" },
            { provider: "b", model: "mb" },
          ],
          input_usd_per_million: 1,
          output_usd_per_million: 1,
        },
      },
      ...Object.fromEntries(keys.map((k, i) => [`K${i}`, k])),
    },
    false,
  );
  const provider = routeProvider(registry, { connectTimeoutMs: 2_000, now: () => t });
  const model = registry.models.get("ab");
  if (!model) throw new Error("no model");
  const open = async (directive: string) => {
    const id = crypto.randomUUID();
    let report: Record<string, string> = {};
    const request = {
      model,
      prompt: [{ role: "user" as const, content: `x [[fake id=${id} tokens=1 ${directive}]]` }],
      maxTokens: 5,
      signal: new AbortController().signal,
      report: (f: Record<string, string>) => {
        report = f;
      },
    };
    try {
      const stream = await provider.open(request);
      while ((await stream.events.read()) !== null);
      return { id, provider: stream.provider, report };
    } catch (e) {
      return { id, error: e as Error, report };
    }
  };
  return { open, advance: (ms: number) => (t += ms) };
}

describe("the per-isolate breaker (a pinned clock)", () => {
  it("skips a target that failed 3 times in a row for 30 s, then tries it again", async () => {
    const { open, advance } = clocked();
    for (let i = 0; i < 3; i++) expect((await open("a.status=500")).provider).toBe("b");
    const skipped = await open("a.status=500");
    expect(skipped.provider).toBe("b");
    expect(await seenBy(A, skipped.id)).toBeNull();
    expect(skipped.report).toMatchObject({ upstream_breaker_skips: "a", upstream_attempts: "b" });
    advance(BREAKER_OPEN_MS - 1);
    expect(await seenBy(A, (await open("")).id)).toBeNull();
    advance(1);
    const retried = await open("");
    expect(retried.provider).toBe("a");
    expect(await seenBy(A, retried.id)).not.toBeNull();
  });

  it("tries the first target when every target is being skipped", async () => {
    const { open } = clocked();
    for (let i = 0; i < 3; i++) await open("a.status=500 b.status=503");
    const all = await open("a.status=500 b.status=503");
    expect(all.report).toMatchObject({ upstream_breaker_skips: "a,b", upstream_attempts: "a" });
    expect(await seenBy(A, all.id)).not.toBeNull();
    expect(await seenBy(B, all.id)).toBeNull();
  });

  it("does not count a 400 (the request's fault) against the target", async () => {
    const { open } = clocked();
    for (let i = 0; i < 4; i++)
      expect((await open("a.status=400")).error?.message).toMatch(/refused/);
    expect((await open("")).provider).toBe("a");
  });
});

describe("key rotation", () => {
  it("takes the next key per request and skips a refused key for a while", async () => {
    const { open, advance } = clocked(["sk-one", "sk-two"]);
    const auth = async (d = "") => (await seenBy(A, (await open(d)).id))?.authorization;
    expect([await auth(), await auth(), await auth()]).toEqual([
      "Bearer sk-one",
      "Bearer sk-two",
      "Bearer sk-one",
    ]);
    // sk-two is refused: that request goes on to b, and sk-two rests.
    const refused = await open("a.denykey=sk-two");
    expect(refused.provider).toBe("b");
    expect([await auth(), await auth()]).toEqual(["Bearer sk-one", "Bearer sk-one"]);
    advance(KEY_COOLDOWN_MS);
    expect([await auth(), await auth()]).toEqual(["Bearer sk-two", "Bearer sk-one"]);
  });
});

/**
 * A Workers AI stream as the binding returns it, verbatim from Cloudflare's docs
 * (cloudflare/cloudflare-docs, layouts/partials/models/responses/text-generation.md, "Using
 * streaming": the curl of "where is new york?"; the docs elide the middle with "..."), and the
 * final usage chunk that newer models send before `[DONE]` (its shape as in Workers AI answers
 * quoted in public tests, e.g. `{"response":"","usage":{"prompt_tokens":...}}`).
 */
