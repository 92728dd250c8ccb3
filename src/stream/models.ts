/** @module The model registry: the one place that names each model, its provider, price and wire quirks. */

/** A provider's name in `PROVIDERS` (the built-in registry has the one `openai`). */
export type ProviderId = string;

export interface ModelInfo {
  id: string;
  provider: ProviderId;
  /** The name the upstream knows the model by. */
  upstreamName: string;
  /** USD per million input (prompt) tokens. */
  inputUsdPerMillion: number;
  /** USD per million output (completion) tokens; reasoning tokens are output tokens. */
  outputUsdPerMillion: number;
  /**
   * The request field that bounds output: OpenAI's gpt-5 and o families refuse `max_tokens` and
   * want `max_completion_tokens` (which also bounds their reasoning tokens); other
   * OpenAI-compatible servers want `max_tokens`.
   */
  maxTokensParam: "max_tokens" | "max_completion_tokens";
  /** The model thinks before it answers (its reasoning tokens are billed as output). */
  reasoning: boolean;
}

/** The built-in registry: what clients may ask for while `PROVIDERS` and `MODELS` are unset. */
export const MODELS = {
  "gpt-4o-mini": {
    id: "gpt-4o-mini",
    provider: "openai",
    upstreamName: "gpt-4o-mini",
    inputUsdPerMillion: 0.15,
    outputUsdPerMillion: 0.6,
    maxTokensParam: "max_tokens",
    reasoning: false,
  },
  "gpt-4o": {
    id: "gpt-4o",
    provider: "openai",
    upstreamName: "gpt-4o",
    inputUsdPerMillion: 2.5,
    outputUsdPerMillion: 10,
    maxTokensParam: "max_tokens",
    reasoning: false,
  },
  "gpt-4.1-mini": {
    id: "gpt-4.1-mini",
    provider: "openai",
    upstreamName: "gpt-4.1-mini",
    inputUsdPerMillion: 0.4,
    outputUsdPerMillion: 1.6,
    maxTokensParam: "max_tokens",
    reasoning: false,
  },
  "o4-mini": {
    id: "o4-mini",
    provider: "openai",
    upstreamName: "o4-mini",
    inputUsdPerMillion: 1.1,
    outputUsdPerMillion: 4.4,
    maxTokensParam: "max_completion_tokens",
    reasoning: true,
  },
  "gpt-5-mini": {
    id: "gpt-5-mini",
    provider: "openai",
    upstreamName: "gpt-5-mini",
    inputUsdPerMillion: 0.25,
    outputUsdPerMillion: 2,
    maxTokensParam: "max_completion_tokens",
    reasoning: true,
  },
} as const satisfies Record<string, ModelInfo>;

export type ModelId = keyof typeof MODELS;
export const MODEL_IDS = Object.keys(MODELS) as [ModelId, ...ModelId[]];
export const DEFAULT_MODEL: ModelId = "gpt-4o-mini";

/** True when `id` names a model of the registry. */
export function isModelId(id: string): id is ModelId {
  return Object.hasOwn(MODELS, id);
}
