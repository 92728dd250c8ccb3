/** @module GET /api/v1/models: the model registry, which clients read instead of a hard-coded list. */
import { Hono } from "hono";
import type { Config } from "../config";
import type { AppEnv } from "../env";
import type { ModelInfo } from "../stream/models";
import { answersWithDemo } from "../stream/select-provider";

/** One model as clients see it: its id, its prices and who may use it. */
export interface PublicModel {
  id: string;
  input_usd_per_million: number;
  output_usd_per_million: number;
  /** Anonymous callers may use it (`ANON_MODELS`). */
  anonymous: boolean;
  /** It sends reasoning (`reasoning_chunk`) and bills its reasoning tokens as output. */
  reasoning: boolean;
}

/** The configured registry, in configuration order. */
export function publicModels(config: Config): {
  default: string;
  demo: boolean;
  models: PublicModel[];
} {
  const { registry } = config;
  return {
    default: registry.defaultModel,
    // The built-in demo answers (development without a key): the page shows its banner at once.
    demo: answersWithDemo(config),
    models: registry.ids.map((id) => {
      // A registry model's prices are the highest over its route: what a stream may cost.
      const model = registry.models.get(id) as ModelInfo;
      return {
        id,
        input_usd_per_million: model.inputUsdPerMillion,
        output_usd_per_million: model.outputUsdPerMillion,
        anonymous: config.anon.models.has(id),
        reasoning: model.reasoning,
      };
    }),
  };
}

/** Public, no token: the page reads it before it has a session. */
export const modelRoutes = new Hono<AppEnv>().get("/", (c) =>
  c.json(publicModels(c.get("config")), 200, { "Cache-Control": "public, max-age=60" }),
);
