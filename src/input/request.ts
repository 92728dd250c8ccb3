/**
 * @module The validated stream request every surface's input adapter ends in, and the checks
 * they share once their own shape has passed: the model's access, the prompt, the cap.
 */
import type { Principal } from "../auth/principal";
import type { Config } from "../config";
import { AppError } from "../errors";
import { maxOutputTokens, usdToMicro } from "../stream/cost";
import type { ModelInfo } from "../stream/models";
import { buildPrompt, type PromptMessage, type Tooling } from "../stream/prompt";
import type { SamplingParams } from "../stream/providers/provider";

/** Cost cap used when a signed-in caller names none. */
export const DEFAULT_COST_CAP_USD = 0.5;

/** One request for a stream, whichever wire format it came in. */
export interface StreamRequest {
  model: ModelInfo;
  /** What the upstream receives: the operator's system prompt first, then the conversation. */
  prompt: PromptMessage[];
  streamId: string;
  /** The caller's own cost cap, in µUSD. */
  capMicroUsd: number;
  /** The client's own bound on output tokens: it can only lower what the cap allows. */
  maxTokens: number | null;
  sampling: SamplingParams;
  /** Tools, tool choice, response format (OpenAI surface only): sent, and in the input bound. */
  tooling?: Tooling;
}

/** The cap bounds that apply to `principal`: its maximum and its default, in USD. */
export function capBounds(config: Config, anonymous: boolean): { max: number; default: number } {
  if (anonymous) return { max: config.anon.costCapMaxUsd, default: config.anon.costCapMaxUsd };
  return {
    max: config.costCapMaxUsd,
    default: Math.min(DEFAULT_COST_CAP_USD, config.costCapMaxUsd),
  };
}

/** True when `principal` may use `model`: anonymous callers only the models of `ANON_MODELS`. */
export function mayUse(config: Config, principal: Principal, model: string): boolean {
  return !principal.isAnonymous || config.anon.models.has(model);
}

/** The lower of two optional bounds. */
const lowest = (a: number | null, b: number | null) =>
  a === null ? b : b === null ? a : Math.min(a, b);

/** What an input adapter read, in our terms, before the shared checks. */
export interface RequestFields {
  /** An id of the registry (the schema checked it). */
  model: string;
  messages: PromptMessage[];
  streamId?: string | undefined;
  costCapUsd: number;
  maxTokens?: number | null;
  sampling?: SamplingParams;
  tooling?: Tooling;
}

/**
 * Finishes a request whose shape passed: 403 `model_not_allowed` for a model the caller may not
 * use, then the prompt (`SYSTEM_PROMPT` first) and a 422 for a cap too small to pay for one
 * output token of it. Nothing has been spent yet when these throw.
 */
export function toStreamRequest(
  config: Config,
  principal: Principal,
  fields: RequestFields,
): StreamRequest {
  if (!mayUse(config, principal, fields.model)) {
    throw new AppError("model_not_allowed", `sign in to use ${fields.model}`);
  }
  const model = config.registry.models.get(fields.model);
  if (!model) throw new AppError("invalid_input", "model: unknown model", { fields: ["model"] });
  const prompt = buildPrompt(config.conversation.systemPrompt, fields.messages);
  const capMicroUsd = usdToMicro(fields.costCapUsd);
  if (maxOutputTokens(model, prompt, capMicroUsd, null, fields.tooling) < 1) {
    throw new AppError(
      "invalid_input",
      "cost_cap_usd: too low to answer this conversation with this model",
      { fields: ["cost_cap_usd"] },
    );
  }
  return {
    model,
    prompt,
    streamId: fields.streamId ?? crypto.randomUUID(),
    capMicroUsd,
    // The model's own `max_output_tokens` bounds it like a client's max_tokens.
    maxTokens: lowest(fields.maxTokens ?? null, model.maxOutputTokens),
    sampling: fields.sampling ?? {},
    ...(fields.tooling ? { tooling: fields.tooling } : {}),
  };
}
