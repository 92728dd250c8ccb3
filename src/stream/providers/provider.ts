/** @module The provider port: what the stream stage needs from any model upstream. */
import type { ModelInfo } from "../models";

/** One thing the upstream said, in our terms. */
export type UpstreamEvent =
  | { type: "delta"; text: string }
  | { type: "usage"; inputTokens: number; outputTokens: number }
  | { type: "finish"; reason: string };

export interface ProviderRequest {
  model: ModelInfo;
  message: string;
  /** Upper bound on output tokens, derived from the cost cap. */
  maxTokens: number;
  /** Aborted when the client goes away or the stream must stop. */
  signal: AbortSignal;
}

/** An answer that has started: the upstream accepted the request. */
export interface ProviderStream {
  /** Reported in `done.provider`. */
  provider: string;
  events: ReadableStream<UpstreamEvent>;
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
