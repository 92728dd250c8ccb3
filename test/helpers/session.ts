/** @module Options for a session under test: generous timers, a cap that never binds, now. */
import { MODELS } from "../../src/stream/models";
import type { SessionOptions } from "../../src/stream/session";

/** A session's options with timers far off and a fresh abort controller; `overrides` win. */
export function sessionOptions(overrides: Partial<SessionOptions> = {}): SessionOptions {
  return {
    streamId: "s1",
    model: MODELS["gpt-4o-mini"],
    prompt: [{ role: "user", content: "m" }],
    capMicroUsd: 1_000_000,
    maxTokens: 16_384,
    heartbeatMs: 60_000,
    maxDurationMs: 60_000,
    idleTimeoutMs: 60_000,
    firstTokenTimeoutMs: 60_000,
    startedAt: Date.now(),
    upstreamAbort: new AbortController(),
    ...overrides,
  };
}
