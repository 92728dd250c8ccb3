/**
 * @module Only the provider's final word is taken as exact: a usage that is not final (the stream
 * did not end on its own), a count of nothing, or a stop the generation may not hear leaves the
 * record at its upper bound. Units of the meter, the session and the adapters.
 */
import { describe, expect, it } from "vitest";
import { inputTokensUpperBound } from "../../src/stream/cost";
import { meterTotals, newMeterState } from "../../src/stream/meter";
import { MODELS } from "../../src/stream/models";
import type { PromptMessage } from "../../src/stream/prompt";
import { anthropicEvents } from "../../src/stream/providers/anthropic";
import { chatChunkEvents } from "../../src/stream/providers/openai";
import type {
  ProviderStream,
  UpstreamEvent,
  UpstreamReader,
} from "../../src/stream/providers/provider";
import { parseRegistry } from "../../src/stream/registry";
import { runSession, type SessionOptions } from "../../src/stream/session";
import { sessionOptions } from "../helpers/session";

const prompt: PromptMessage[] = [{ role: "user", content: "Think hard." }];
const MAX = 500;

/** An upstream that sends `events` in one read, then stays silent until cancelled. */
function silentAfter(events: UpstreamEvent[]): UpstreamReader {
  let sent = false;
  let wake: (() => void) | null = null;
  return {
    read: async () => {
      if (!sent) {
        sent = true;
        return events;
      }
      await new Promise<void>((r) => {
        wake = r;
      });
      return null;
    },
    cancel: async () => wake?.(),
  };
}

/** A reasoning model's session, max_tokens MAX, unless `o` says otherwise. */
const options = (o: Partial<SessionOptions> = {}) =>
  sessionOptions({ model: MODELS["o4-mini"], prompt, maxTokens: MAX, startedAt: Date.now(), ...o });

/** Runs a session over `upstream`, leaves once its first read is done, and returns its summary. */
async function leaveEarly(upstream: ProviderStream, o: Partial<SessionOptions> = {}) {
  const upstreamAbort = new AbortController();
  const session = runSession(upstream, options({ upstreamAbort, ...o }));
  await new Promise((r) => setTimeout(r, 10));
  upstreamAbort.abort("client_abort");
  return session.finished;
}

describe("a usage that is not the provider's final word", () => {
  it("is not taken as exact when the stream was stopped after it (an early usage, then silent reasoning)", async () => {
    const summary = await leaveEarly({
      provider: "test",
      events: silentAfter([{ type: "usage", inputTokens: 12, outputTokens: 0 }]),
    });
    expect(summary).toMatchObject({
      finishReason: "client_abort",
      usageSource: "estimated",
      outputTokens: MAX,
      inputTokens: inputTokensUpperBound(prompt),
    });
  });

  it("is exact when the upstream ended on its own after it", () => {
    const state = newMeterState();
    state.usage = { inputTokens: 12, outputTokens: 7 };
    state.usageFinal = true;
    const model = MODELS["gpt-4o-mini"];
    expect(
      meterTotals(model, prompt, state, { maxTokens: MAX, ended: true, hidden: false }),
    ).toMatchObject({ inputTokens: 12, outputTokens: 7, usageSource: "upstream" });
    expect(
      meterTotals(model, prompt, state, { maxTokens: MAX, ended: false, hidden: false }),
    ).toMatchObject({ inputTokens: inputTokensUpperBound(prompt), usageSource: "estimated" });
  });

  it("is no count at all when it says the prompt was 0 tokens (OpenAI-compatible)", () => {
    const zero = JSON.stringify({ choices: [], usage: { prompt_tokens: 0, completion_tokens: 0 } });
    expect(chatChunkEvents(zero)).toEqual([]);
    const real = JSON.stringify({ choices: [], usage: { prompt_tokens: 9, completion_tokens: 2 } });
    expect(chatChunkEvents(real)).toEqual([{ type: "usage", inputTokens: 9, outputTokens: 2 }]);
  });

  it("is no count at all when Anthropic's message_delta carries no output count", async () => {
    const sse = (type: string, data: unknown) =>
      `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
    const body = (delta: Record<string, unknown>) =>
      new Response(
        sse("message_start", { type: "message_start", message: { usage: { input_tokens: 20 } } }) +
          sse("content_block_delta", {
            type: "content_block_delta",
            index: 0,
            delta: { type: "text_delta", text: "Hi" },
          }) +
          sse("message_delta", {
            type: "message_delta",
            delta: { stop_reason: "end_turn" },
            ...delta,
          }) +
          sse("message_stop", { type: "message_stop" }),
      ).body as ReadableStream<Uint8Array>;
    const all = async (reader: UpstreamReader) => {
      const out: UpstreamEvent[] = [];
      for (let b = await reader.read(); b !== null; b = await reader.read()) out.push(...b);
      return out;
    };
    const without = await all(anthropicEvents(body({ usage: {} })));
    expect(without.filter((e) => e.type === "usage")).toEqual([]);
    const withCount = await all(anthropicEvents(body({ usage: { output_tokens: 3 } })));
    expect(withCount.filter((e) => e.type === "usage")).toEqual([
      { type: "usage", inputTokens: 20, outputTokens: 3 },
    ]);
  });
});

describe("output generated after the last token arrived", () => {
  it("records a stream stopped before its finish at max_tokens, and one that finished at its bytes", async () => {
    const model = MODELS["gpt-4o-mini"];
    // Stopped mid-generation: the provider (a fast one, or Workers AI, whose binding takes no
    // signal) may have generated up to max_tokens before the stop reached it.
    const stopped = await leaveEarly(
      { provider: "w", events: silentAfter([{ type: "delta", text: "Hi" }]) },
      { model },
    );
    expect(stopped).toMatchObject({ outputTokens: MAX, usageSource: "estimated" });
    // Finished (a finish reason came), then left before its usage: every billed token arrived.
    const finished = await leaveEarly(
      {
        provider: "w",
        events: silentAfter([
          { type: "delta", text: "Hi" },
          { type: "finish", reason: "stop" },
        ]),
      },
      { model },
    );
    expect(finished).toMatchObject({ outputTokens: 2, usageSource: "estimated" });
  });

  it("treats a configured alias of a reasoning model as reasoning unless told otherwise", () => {
    const registry = parseRegistry(
      {
        OPENAI_API_KEY: "k",
        PROVIDERS: JSON.stringify({ o: { type: "openai", base_url: "https://o.example/v1" } }),
        MODELS: JSON.stringify({
          thinker: {
            route: [{ provider: "o", model: "o4-mini" }],
            input_usd_per_million: 1.1,
            output_usd_per_million: 4.4,
          },
          plain: {
            route: [{ provider: "o", model: "o4-mini" }],
            input_usd_per_million: 1.1,
            output_usd_per_million: 4.4,
            reasoning: false,
          },
        }),
      },
      false,
    );
    expect(registry.models.get("thinker")?.reasoning).toBe(true);
    expect(registry.models.get("plain")?.reasoning).toBe(false);
  });
});

describe("a client gone before the session starts", () => {
  it("is a client_abort, not an upstream failure that would give the quota back", async () => {
    const upstreamAbort = new AbortController();
    upstreamAbort.abort("client_abort");
    const session = runSession(
      { provider: "test", events: silentAfter([{ type: "delta", text: "late" }]) },
      options({ upstreamAbort, model: MODELS["gpt-4o-mini"] }),
    );
    const summary = await session.finished;
    expect(summary).toMatchObject({ finishReason: "client_abort", failedBeforeFirstToken: false });
  });
});
