/** @module The provider port: what the stream stage needs from any model upstream. */
import type { ModelInfo } from "../models";
import type { PromptMessage, Tooling } from "../prompt";

/** One thing the upstream said, in our terms. */
export type UpstreamEvent =
  | { type: "delta"; text: string }
  /** Reasoning text (`reasoning_content`, `reasoning`, thinking parts): output, never answer. */
  | { type: "reasoning"; text: string }
  /**
   * A piece of a function call (OpenAI's `delta.tool_calls[i]`, Anthropic's `tool_use` start and
   * `input_json_delta`): `index` numbers the calls of one answer from 0; the first piece of a
   * call carries its `id` and `name`, later ones only more `arguments` (JSON text).
   */
  | { type: "tool_call"; index: number; id?: string; name?: string; arguments: string }
  | { type: "usage"; inputTokens: number; outputTokens: number }
  | { type: "finish"; reason: string };

/** The sampling parameters a client may set on the OpenAI-compatible surface. */
export interface SamplingParams {
  temperature?: number;
  top_p?: number;
  stop?: string | string[];
  presence_penalty?: number;
  frequency_penalty?: number;
  seed?: number;
}

export interface ProviderRequest {
  model: ModelInfo;
  /** The whole prompt, system prompt first. */
  prompt: PromptMessage[];
  /** Upper bound on output tokens (reasoning included), derived from the cost cap. */
  maxTokens: number;
  /** Sampling parameters passed through as they are (temperature, top_p, stop, ...). */
  sampling?: SamplingParams;
  /** Tools, tool choice and response format (OpenAI surface only); in the input bound too. */
  tooling?: Tooling;
  /** Aborted when the client goes away or the stream must stop. */
  signal: AbortSignal;
  /**
   * The stream's hold (its effective cap), µUSD: a route derives each target's own `max_tokens`
   * from it at that target's output price. Without it every target gets `maxTokens`.
   */
  capMicroUsd?: number;
  /** The client's own bound on output tokens (and the model's `max_output_tokens`), if any. */
  clientMaxTokens?: number | null;
  /** Receives the route's attempts, fallbacks and breaker skips for the access line and metrics. */
  report?: (fields: Record<string, string>) => void;
}

/**
 * The upstream's events, read one upstream chunk at a time. Not a ReadableStream: the session
 * takes each batch synchronously, so one read of the upstream body costs one await, not one
 * per event and per stage.
 */
export interface UpstreamReader {
  /**
   * The events of the next upstream chunk (possibly none), or null once the upstream finished or
   * the reader was cancelled. Throws when the upstream failed (cut short, malformed, an in-band
   * error), but only after every event that arrived before the failure was returned.
   */
  read(): Promise<UpstreamEvent[] | null>;
  /** Stops reading: a pending `read` resolves null, and the upstream body is released. */
  cancel(reason?: unknown): Promise<void>;
}

/** An answer that has started: the upstream accepted the request. */
export interface ProviderStream {
  /** Reported in `done.provider`. */
  provider: string;
  events: UpstreamReader;
  /** The answering target's model name at its provider (`upstream_model` in the ledger). */
  upstreamModel?: string;
  /**
   * The answering target's model, with that target's prices: the stream is metered and
   * recorded at them. Absent: the requested model's.
   */
  model?: ModelInfo;
  /**
   * The `max_tokens` the answering target was sent (a cheaper target gets more for the same
   * hold): the bound of what it can bill as output. Absent: the request's.
   */
  maxTokens?: number;
}

/**
 * Opens a stream, or throws an AppError (`upstream_error`, `upstream_busy`,
 * `model_unavailable`) when the upstream refuses before its first byte.
 */
export interface Provider {
  /** Reported in `done.provider` and the ledger. */
  readonly id: string;
  open(request: ProviderRequest): Promise<ProviderStream>;
}

/**
 * One target's protocol (OpenAI-compatible, Anthropic, Workers AI): opens a stream with the key
 * the route chose, or throws an UpstreamFailure saying how it refused.
 */
export interface TargetAdapter {
  open(request: ProviderRequest, key: string | undefined): Promise<ProviderStream>;
}
