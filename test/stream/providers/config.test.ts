/**
 * @module The registry as configuration: every misconfiguration named, the models endpoints, the
 * breaker and key rotation with a pinned clock (no waiting), Workers AI through a fake binding
 * replaying a recorded stream, and the per-provider metrics.
 */
import { describe, expect, inject, it } from "vitest";
import type { Bindings } from "../../../src/env";
import type { ErrorBody } from "../../../src/errors";
import type { DoneData } from "../../../src/stream/frames";
import { BREAKER_OPEN_MS, KEY_COOLDOWN_MS } from "../../../src/stream/providers/health";
import { routeProvider } from "../../../src/stream/providers/route";
import { type AiBinding, parseRegistry } from "../../../src/stream/registry";
import { call, json, testEnv } from "../../helpers/app";
import { anonCaller, postAs } from "../../helpers/gate";
import { readEvents } from "../../helpers/sse";
import { bearer, SECRET_KEY } from "../../helpers/tokens";
import type { UpstreamRecord } from "../../support/upstream-record";

const A = inject("upstreamAUrl");
const B = inject("upstreamBUrl");

async function seenBy(base: string, id: string): Promise<UpstreamRecord | null> {
  const res = await fetch(`${base}/__test/requests/${id}`);
  if (res.status === 404) {
    await res.body?.cancel();
    return null;
  }
  return (await res.json()) as UpstreamRecord;
}

type Vars = Record<string, unknown>;
const env = (vars: Vars) => ({ ...testEnv(), ...vars }) as Bindings;
/** A production env that passes every other check (https everywhere, strong tokens). */
const production = (vars: Vars) =>
  env({
    ENVIRONMENT: "production",
    SECRET_KEY,
    SUPABASE_URL: "https://abcdefghijklmnop.supabase.co",
    SUPABASE_JWKS_URL: undefined,
    OPENAI_BASE_URL: "https://api.openai.com/v1",
    METRICS_TOKEN: "m".repeat(32),
    ...vars,
  });

const ONE_MODEL = {
  m: {
    route: [{ provider: "p", model: "x" }],
    input_usd_per_million: 1,
    output_usd_per_million: 2,
  },
};
const ONE_PROVIDER = {
  p: { type: "openai", base_url: "https://api.example/v1", api_keys: ["P_KEY"] },
};

describe("a registry that is not valid", () => {
  const CASES: [string, Vars, string][] = [
    [
      "PROVIDERS not JSON",
      { PROVIDERS: "{nope", MODELS: JSON.stringify(ONE_MODEL) },
      "PROVIDERS: not JSON",
    ],
    ["MODELS not JSON", { MODELS: "[[" }, "MODELS: not JSON"],
    [
      "an unknown provider type",
      { PROVIDERS: { p: { type: "bedrock" } }, MODELS: ONE_MODEL },
      "PROVIDERS.p.type",
    ],
    [
      "an unknown field",
      { PROVIDERS: { p: { type: "openai", url: "x" } }, MODELS: ONE_MODEL },
      "PROVIDERS.p",
    ],
    [
      "a route to an unknown provider",
      {
        PROVIDERS: ONE_PROVIDER,
        MODELS: { m: { ...ONE_MODEL.m, route: [{ provider: "q", model: "x" }] } },
      },
      "MODELS.m.route.0.provider",
    ],
    [
      "a route with no target",
      { PROVIDERS: ONE_PROVIDER, MODELS: { m: { ...ONE_MODEL.m, route: [] } } },
      "MODELS.m.route",
    ],
    [
      "a route of five targets",
      {
        PROVIDERS: ONE_PROVIDER,
        MODELS: { m: { ...ONE_MODEL.m, route: Array(5).fill({ provider: "p", model: "x" }) } },
      },
      "MODELS.m.route",
    ],
    [
      "a missing price",
      {
        PROVIDERS: ONE_PROVIDER,
        MODELS: { m: { route: [{ provider: "p", model: "x" }], input_usd_per_million: 1 } },
      },
      "MODELS.m.output_usd_per_million",
    ],
    [
      "a negative price",
      { PROVIDERS: ONE_PROVIDER, MODELS: { m: { ...ONE_MODEL.m, input_usd_per_million: -1 } } },
      "MODELS.m.input_usd_per_million",
    ],
    [
      "a price that is not a number",
      { PROVIDERS: ONE_PROVIDER, MODELS: { m: { ...ONE_MODEL.m, output_usd_per_million: "2" } } },
      "MODELS.m.output_usd_per_million",
    ],
    [
      "a target price that is not a number",
      {
        PROVIDERS: ONE_PROVIDER,
        MODELS: {
          m: {
            ...ONE_MODEL.m,
            route: [{ provider: "p", model: "x", input_usd_per_million: null }],
          },
        },
      },
      "MODELS.m.route.0.input_usd_per_million",
    ],
    [
      "DEFAULT_MODEL not in MODELS",
      { PROVIDERS: ONE_PROVIDER, MODELS: ONE_MODEL, DEFAULT_MODEL: "gpt-9", P_KEY: "k" },
      "DEFAULT_MODEL",
    ],
    [
      "an ANON_MODELS id not in MODELS",
      { PROVIDERS: ONE_PROVIDER, MODELS: ONE_MODEL, ANON_MODELS: "m,gpt-4o-mini" },
      "ANON_MODELS: gpt-4o-mini",
    ],
    ["MODELS without a provider named openai", { PROVIDERS: ONE_PROVIDER }, "MODELS: unset"],
  ];
  for (const [what, vars, field] of CASES) {
    it(`answers 500 misconfigured naming the field for ${what}, while /healthz stays up`, async () => {
      const bad = env({ ANON_MODELS: "m", ...vars });
      const { res } = await call("/api/v1/models", {}, bad);
      expect(res.status).toBe(500);
      const body = await json<ErrorBody>(res);
      expect(body.error_code).toBe("misconfigured");
      expect(body.detail).toContain(field);
      expect((await call("/healthz", {}, bad)).res.status).toBe(200);
    });
  }

  const PROD: [string, Vars, string][] = [
    [
      "a key secret that is not set",
      { PROVIDERS: ONE_PROVIDER, MODELS: ONE_MODEL },
      "PROVIDERS.p.api_keys: the secret P_KEY is not set",
    ],
    [
      "a header secret that is not set",
      {
        PROVIDERS: { p: { type: "openai", headers: { "api-key": "$AZURE_KEY" } } },
        MODELS: ONE_MODEL,
      },
      "PROVIDERS.p.headers.api-key",
    ],
    [
      "a base_url over http",
      { PROVIDERS: { p: { type: "openai", base_url: "http://x.example/v1" } }, MODELS: ONE_MODEL },
      "PROVIDERS.p.base_url",
    ],
    [
      "workers-ai without the AI binding",
      { PROVIDERS: { p: { type: "workers-ai" } }, MODELS: ONE_MODEL },
      "PROVIDERS.p",
    ],
  ];
  for (const [what, vars, field] of PROD) {
    it(`in production, answers misconfigured for ${what}`, async () => {
      const { res } = await call("/api/v1/models", {}, production({ ANON_MODELS: "m", ...vars }));
      expect(res.status).toBe(500);
      expect((await json<ErrorBody>(res)).detail).toContain(field);
    });
  }

  it("never puts a secret's value in the detail", async () => {
    const vars = {
      PROVIDERS: { p: { type: "openai", api_keys: ["P_KEY"], headers: { "x-k": "$H_KEY" } } },
      MODELS: { m: { route: [{ provider: "p", model: "x" }], input_usd_per_million: 1 } },
      P_KEY: "sk-very-secret",
      H_KEY: "header-secret",
    };
    const { res } = await call("/api/v1/models", {}, production({ ANON_MODELS: "m", ...vars }));
    const text = await res.text();
    expect(res.status).toBe(500);
    expect(text).not.toContain("sk-very-secret");
    expect(text).not.toContain("header-secret");
  });

  it("keeps today's registry when PROVIDERS and MODELS are unset", () => {
    const r = parseRegistry({ OPENAI_API_KEY: "k", OPENAI_BASE_URL: "https://o.example/v1" }, true);
    expect(r.builtIn).toBe(true);
    expect(r.ids).toEqual(["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "o4-mini", "gpt-5-mini"]);
    expect(r.defaultModel).toBe("gpt-4o-mini");
    const o4 = r.models.get("o4-mini");
    expect(o4).toMatchObject({
      provider: "openai",
      maxTokensParam: "max_completion_tokens",
      outputUsdPerMillion: 4.4,
    });
    expect(o4?.route.map((t) => [t.provider.baseUrl, t.provider.keys])).toEqual([
      ["https://o.example/v1", ["k"]],
    ]);
  });
});

describe("the three worked configurations of docs/configuration.md (as wrangler.toml hands them over)", () => {
  const secrets = {
    OPENAI_API_KEY: "sk-o",
    ANTHROPIC_API_KEY: "sk-a1",
    ANTHROPIC_API_KEY_2: "sk-a2",
    GROQ_API_KEY: "gsk",
    AI: { run: async () => new ReadableStream() },
  };
  const CONFIGS: [string, Vars, string[]][] = [
    [
      "OpenAI only",
      {
        PROVIDERS: {
          openai: {
            type: "openai",
            base_url: "https://api.openai.com/v1",
            api_keys: ["OPENAI_API_KEY"],
          },
        },
        MODELS: {
          "gpt-4o-mini": {
            route: [{ provider: "openai", model: "gpt-4o-mini" }],
            input_usd_per_million: 0.15,
            output_usd_per_million: 0.6,
          },
          "o4-mini": {
            route: [{ provider: "openai", model: "o4-mini" }],
            input_usd_per_million: 1.1,
            output_usd_per_million: 4.4,
            reasoning: true,
          },
        },
      },
      ["openai"],
    ],
    [
      "Anthropic with OpenAI as the fallback",
      {
        PROVIDERS: {
          anthropic: { type: "anthropic", api_keys: ["ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY_2"] },
          openai: { type: "openai", api_keys: ["OPENAI_API_KEY"] },
        },
        MODELS: {
          "claude-sonnet": {
            route: [
              {
                provider: "anthropic",
                model: "claude-sonnet-4-5",
                input_usd_per_million: 3,
                output_usd_per_million: 15,
              },
              {
                provider: "openai",
                model: "gpt-4o",
                input_usd_per_million: 2.5,
                output_usd_per_million: 10,
              },
            ],
          },
        },
      },
      ["anthropic", "openai"],
    ],
    [
      "Groq with Workers AI as the fallback",
      {
        PROVIDERS: {
          groq: {
            type: "openai",
            base_url: "https://api.groq.com/openai/v1",
            api_keys: ["GROQ_API_KEY"],
          },
          cf: { type: "workers-ai" },
        },
        MODELS: {
          "llama-3-3-70b": {
            route: [
              {
                provider: "groq",
                model: "llama-3.3-70b-versatile",
                input_usd_per_million: 0.59,
                output_usd_per_million: 0.79,
              },
              {
                provider: "cf",
                model: "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
                input_usd_per_million: 0.29,
                output_usd_per_million: 2.25,
              },
            ],
          },
        },
      },
      ["groq", "cf"],
    ],
  ];
  for (const [what, vars, route] of CONFIGS) {
    it(`accepts ${what} in production`, () => {
      const r = parseRegistry({ ...secrets, ...vars }, true);
      const first = r.models.get(r.defaultModel);
      expect(first?.route.map((t) => t.provider.name)).toEqual(route);
      expect(first?.route.every((t) => !t.provider.unavailable)).toBe(true);
    });
  }
});

describe("the models endpoints", () => {
  const vars = {
    PROVIDERS: {
      a: { type: "openai", base_url: `${A}/v1` },
      b: { type: "openai", base_url: `${B}/v1` },
    },
    MODELS: {
      "llama-70b": {
        route: [
          { provider: "a", model: "llama-3.3-70b", output_usd_per_million: 0.79 },
          { provider: "b", model: "@cf/meta/llama-3.3-70b", output_usd_per_million: 2.25 },
        ],
        input_usd_per_million: 0.59,
      },
      small: {
        route: [{ provider: "a", model: "s" }],
        input_usd_per_million: 0.05,
        output_usd_per_million: 0.08,
      },
    },
    ANON_MODELS: "small",
  };

  it("list the configured ids, each priced at the highest over its route", async () => {
    const { res } = await call("/api/v1/models", {}, env(vars));
    expect(await json(res)).toEqual({
      default: "llama-70b",
      // A configured registry: the demo does not answer.
      demo: false,
      models: [
        {
          id: "llama-70b",
          input_usd_per_million: 0.59,
          output_usd_per_million: 2.25,
          anonymous: false,
          reasoning: false,
        },
        {
          id: "small",
          input_usd_per_million: 0.05,
          output_usd_per_million: 0.08,
          anonymous: true,
          reasoning: false,
        },
      ],
    });
  });

  it("/v1/models lists what the caller may use, and an unknown id is still 422 naming model", async () => {
    const who = await anonCaller();
    const { res } = await call("/v1/models", { headers: bearer(who.token), ip: who.ip }, env(vars));
    expect(((await json(res)) as { data: { id: string }[] }).data.map((m) => m.id)).toEqual([
      "small",
    ]);
    const bad = await postAs(who, "/api/v1/stream", { message: "hi", model: "gpt-4o" }, env(vars));
    expect(bad.res.status).toBe(422);
    expect((await json<ErrorBody>(bad.res)).fields).toEqual(["model"]);
  });
});

/** A route provider over the two fakes with a clock the test moves. */
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
const WORKERS_AI_RECORDING = [
  'data: {"response":"New"}\n\n',
  'data: {"response":" York"}\n\n',
  'data: {"response":" is"}\n\n',
  'data: {"response":" located"}\n\n',
  'data: {"response":" in"}\n\n',
  'data: {"response":" the"}\n\n',
  'data: {"response":"","usage":{"prompt_tokens":18,"completion_tokens":6,"total_tokens":24}}\n\n',
  "data: [DONE]\n\n",
];

/** A fake `AI` binding: records each call, answers the recording (or throws `fail`). */
function fakeAi(
  fail?: Error,
): AiBinding & { calls: { model: string; inputs: Record<string, unknown> }[] } {
  const calls: { model: string; inputs: Record<string, unknown> }[] = [];
  return {
    calls,
    async run(model, inputs) {
      calls.push({ model, inputs });
      if (fail) throw fail;
      const bytes = new TextEncoder();
      return new ReadableStream<Uint8Array>({
        start(c) {
          for (const chunk of WORKERS_AI_RECORDING) c.enqueue(bytes.encode(chunk));
          c.close();
        },
      });
    },
  };
}

describe("workers-ai targets through the AI binding", () => {
  const groqThenCf = (ai: AiBinding) =>
    env({
      PROVIDERS: JSON.stringify({
        groq: { type: "openai", base_url: `${A}/v1`, api_keys: ["GROQ_API_KEY"] },
        cf: { type: "workers-ai" },
      }),
      MODELS: JSON.stringify({
        "llama-3.3-70b": {
          route: [
            {
              provider: "groq",
              model: "llama-3.3-70b-versatile",
              input_usd_per_million: 0.59,
              output_usd_per_million: 0.79,
            },
            {
              provider: "cf",
              model: "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
              input_usd_per_million: 0.29,
              output_usd_per_million: 2.25,
            },
          ],
        },
      }),
      ANON_MODELS: "llama-3.3-70b",
      GROQ_API_KEY: "gsk-test",
      AI: ai,
      // A fake AI binding lives in the test, not in a stream owner: the direct path.
      STREAM_RESUME_TTL_S: "0",
    });

  it("falls back from Groq to Workers AI and streams the recorded answer with its usage", async () => {
    const ai = fakeAi();
    const who = await anonCaller();
    const message = "where is new york? [[fake a.status=503]]";
    const { res, settled } = await postAs(
      who,
      "/api/v1/stream",
      { message, model: "llama-3.3-70b" },
      groqThenCf(ai),
    );
    const events = await readEvents(res);
    await settled();
    const chunks = events.filter((e) => e.event === "message_chunk").map((e) => e.data.content);
    expect(chunks.join("")).toBe("New York is located in the");
    const done = events.at(-1)?.data as unknown as DoneData;
    expect(done).toMatchObject({
      provider: "cf",
      upstream_model: "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
      input_tokens: 18,
      output_tokens: 6,
      usage_source: "upstream",
      cost_usd: Math.ceil(18 * 0.29 + 6 * 2.25) / 1e6,
    });
    expect(ai.calls).toHaveLength(1);
    expect(ai.calls[0]?.model).toBe("@cf/meta/llama-3.3-70b-instruct-fp8-fast");
    expect(ai.calls[0]?.inputs).toMatchObject({
      stream: true,
      messages: [{ role: "user", content: message }],
    });
    expect(ai.calls[0]?.inputs.max_tokens).toBeGreaterThan(0);
  });

  it("counts a capacity error of the binding as busy: 503 upstream_busy when it was the last", async () => {
    const who = await anonCaller();
    const ai = fakeAi(new Error("3040: Capacity temporarily exceeded, please try again."));
    const { res, settled } = await postAs(
      who,
      "/api/v1/stream",
      { message: "x [[fake a.status=500]]", model: "llama-3.3-70b" },
      groqThenCf(ai),
    );
    expect(res.status).toBe(503);
    expect((await json<ErrorBody>(res)).error_code).toBe("upstream_busy");
    await settled();
  });
});

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
