/** @module The batch an upstream read returns just as the stream is aborted is metered, not dropped. */
import { describe, expect, it } from "vitest";
import { textTokensUpperBound } from "../../src/stream/cost";
import { MODELS } from "../../src/stream/models";
import type { UpstreamEvent, UpstreamReader } from "../../src/stream/providers/provider";
import { runSession } from "../../src/stream/session";

describe("a stream aborted while a read is in flight", () => {
  it("meters the batch that read returns", async () => {
    const upstreamAbort = new AbortController();
    const batches: UpstreamEvent[][] = [
      [{ type: "delta", text: " hello" }],
      [
        { type: "delta", text: " world" },
        { type: "delta", text: " again" },
      ],
    ];
    let reads = 0;
    const events: UpstreamReader = {
      read: async () => {
        reads++;
        // The second read resolves with a batch in the same moment the client goes away.
        if (reads === 2) upstreamAbort.abort("client_abort");
        return batches.shift() ?? null;
      },
      cancel: async () => {},
    };
    const model = MODELS["gpt-4o-mini"];
    const session = runSession(
      { provider: "test", events },
      {
        streamId: "s",
        model,
        prompt: [{ role: "user", content: "m" }],
        capMicroUsd: 1_000_000,
        maxTokens: 16_384,
        heartbeatMs: 60_000,
        maxDurationMs: 60_000,
        idleTimeoutMs: 60_000,
        firstTokenTimeoutMs: 60_000,
        startedAt: Date.now(),
        upstreamAbort,
      },
    );
    const summary = await session.finished;
    expect(summary.finishReason).toBe("client_abort");
    // No usage came: all three were metered (none dropped), and with no finish the record is
    // the bound of what the upstream may have generated, its max_tokens.
    const produced = [" hello", " world", " again"].reduce(
      (n, t) => n + textTokensUpperBound(t),
      0,
    );
    expect(produced).toBe(18);
    expect(summary.outputTokens).toBe(16_384);
  });
});
