/** @module The provider registry: every invalid one refused at start with its reason, and the three worked configurations of docs/configuration.md. */
import { describe, expect, it } from "vitest";
import type { ErrorBody } from "../../../src/errors";
import { parseRegistry } from "../../../src/stream/registry";
import { call, json } from "../../helpers/app";
import { env, ONE_MODEL, ONE_PROVIDER, production, type Vars } from "../../helpers/providers";

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
