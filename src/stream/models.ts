/** @module The model registry: the one place that names each model, its provider and its price. */

export type ProviderId = "openai";

export interface ModelInfo {
  id: string;
  provider: ProviderId;
  /** The name the upstream knows the model by. */
  upstreamName: string;
  /** USD per million input (prompt) tokens. */
  inputUsdPerMillion: number;
  /** USD per million output (completion) tokens. */
  outputUsdPerMillion: number;
}

/** Every model a client may ask for. The first is the default. */
export const MODELS = {
  "gpt-4o-mini": {
    id: "gpt-4o-mini",
    provider: "openai",
    upstreamName: "gpt-4o-mini",
    inputUsdPerMillion: 0.15,
    outputUsdPerMillion: 0.6,
  },
  "gpt-4o": {
    id: "gpt-4o",
    provider: "openai",
    upstreamName: "gpt-4o",
    inputUsdPerMillion: 2.5,
    outputUsdPerMillion: 10,
  },
  "gpt-4.1-mini": {
    id: "gpt-4.1-mini",
    provider: "openai",
    upstreamName: "gpt-4.1-mini",
    inputUsdPerMillion: 0.4,
    outputUsdPerMillion: 1.6,
  },
} as const satisfies Record<string, ModelInfo>;

export type ModelId = keyof typeof MODELS;
export const MODEL_IDS = Object.keys(MODELS) as [ModelId, ...ModelId[]];
export const DEFAULT_MODEL: ModelId = "gpt-4o-mini";
