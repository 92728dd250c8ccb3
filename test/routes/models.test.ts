/** @module The models endpoints: GET /api/v1/models and /v1/models list what the registry serves, priced, and what each caller may use. */
import { describe, expect, it } from "vitest";
import type { ErrorBody } from "../../src/errors";
import { MODELS } from "../../src/stream/models";
import { call, json, testEnv } from "../helpers/app";
import { anonCaller, postAs } from "../helpers/gate";
import { A, B, env } from "../helpers/providers";
import { bearer } from "../helpers/tokens";

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

describe("GET /api/v1/models", () => {
  it("says whether the built-in demo answers: in development without a key, and only then", async () => {
    const demoOf = async (bindings: ReturnType<typeof testEnv>) => {
      const { res } = await call("/api/v1/models", {}, bindings);
      return ((await res.json()) as { demo: unknown }).demo;
    };
    expect(await demoOf(testEnv({ OPENAI_API_KEY: undefined }))).toBe(true);
    expect(await demoOf(testEnv())).toBe(false);
  });

  it("lists the registry with prices, the default and what anonymous callers may use", async () => {
    const { res } = await call(
      "/api/v1/models",
      {},
      testEnv({ ANON_MODELS: "gpt-4o-mini,o4-mini" }),
    );
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      default: string;
      models: {
        id: string;
        input_usd_per_million: number;
        output_usd_per_million: number;
        anonymous: boolean;
        reasoning: boolean;
      }[];
    };
    expect(body.default).toBe("gpt-4o-mini");
    expect(body.models.map((m) => m.id)).toEqual(Object.keys(MODELS));
    expect(body.models.find((m) => m.id === "gpt-4o")).toEqual({
      id: "gpt-4o",
      input_usd_per_million: 2.5,
      output_usd_per_million: 10,
      anonymous: false,
      reasoning: false,
    });
    expect(body.models.filter((m) => m.anonymous).map((m) => m.id)).toEqual([
      "gpt-4o-mini",
      "o4-mini",
    ]);
    expect(body.models.find((m) => m.id === "o4-mini")?.reasoning).toBe(true);
  });

  it("refuses a configuration naming a model the registry does not have", async () => {
    const { res } = await call("/api/v1/models", {}, testEnv({ ANON_MODELS: "gpt-4o-mini,gpt-9" }));
    expect(res.status).toBe(500);
    expect(((await res.json()) as ErrorBody).error_code).toBe("misconfigured");
  });
});
