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
