/**
 * @module Workers AI through the Worker's `AI` binding: `AI.run(model, {messages, stream: true,
 * max_tokens})` answers an SSE body of `{"response": "..."}` chunks (newer models send
 * chat-completions chunks instead), a last chunk with `usage`, then `[DONE]`.
 */
import type { EventSourceMessage } from "eventsource-parser";
import type { AiBinding } from "../registry";
import { UpstreamFailure } from "./failure";
import { chatChunkEvents } from "./openai";
import type { TargetAdapter, UpstreamEvent, UpstreamReader } from "./provider";
import { sseEvents } from "./sse";

interface AiChunk {
  response?: unknown;
  choices?: unknown;
  usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } | null;
}

const isCount = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n) && n >= 0;

/** One `data:` of a Workers AI stream as UpstreamEvents; `[DONE]` ends it. */
function aiChunkEvents(data: string, batch: UpstreamEvent[]): boolean {
  if (data === "[DONE]") return true;
  let chunk: AiChunk;
  try {
    chunk = JSON.parse(data) as AiChunk;
  } catch {
    throw new Error("malformed upstream chunk");
  }
  if (typeof chunk !== "object" || chunk === null) throw new Error("malformed upstream chunk");
  if (Array.isArray(chunk.choices)) {
    // The chat-completions shape; its own usage is read below, from the same chunk.
    for (const e of chatChunkEvents(data)) if (e.type !== "usage") batch.push(e);
  } else if (typeof chunk.response === "string" && chunk.response) {
    batch.push({ type: "delta", text: chunk.response });
  }
  const u = chunk.usage;
  // Some models send a zero usage on every chunk; only the final count is worth taking.
  if (u && isCount(u.prompt_tokens) && isCount(u.completion_tokens) && u.prompt_tokens > 0) {
    batch.push({ type: "usage", inputTokens: u.prompt_tokens, outputTokens: u.completion_tokens });
  }
  return false;
}

/** The binding's stream as UpstreamEvents; one that ends before `[DONE]` was cut short. */
export function workersAiEvents(body: ReadableStream<Uint8Array>): UpstreamReader {
  let complete = false;
  return sseEvents(
    body,
    (message: EventSourceMessage, batch) => {
      if (aiChunkEvents(message.data, batch)) complete = true;
    },
    () => complete,
  );
}

/**
 * The binding's errors carry no status: capacity errors (3040) are a busy provider, input
 * validation (5006) the request's fault, anything else a failure the next target may not share.
 */
function failureOf(cause: unknown): UpstreamFailure {
  const text = cause instanceof Error ? cause.message : String(cause);
  if (/\b3040\b|capacity/i.test(text)) return new UpstreamFailure(429, { cause });
  if (/\b5006\b|validation/i.test(text)) return new UpstreamFailure(400, { cause });
  return new UpstreamFailure(502, { cause });
}

/** The workers-ai target over `binding` (a fake one in tests). */
export function workersAiTarget(binding: AiBinding): TargetAdapter {
  return {
    async open({ model, prompt, maxTokens, sampling, signal }) {
      let result: unknown;
      try {
        result = await binding.run(model.upstreamName, {
          messages: prompt,
          stream: true,
          max_tokens: maxTokens,
          ...(sampling?.temperature !== undefined ? { temperature: sampling.temperature } : {}),
          ...(sampling?.top_p !== undefined ? { top_p: sampling.top_p } : {}),
          ...(sampling?.seed !== undefined ? { seed: sampling.seed } : {}),
        });
      } catch (cause) {
        throw failureOf(cause);
      }
      if (!(result instanceof ReadableStream)) {
        throw new UpstreamFailure(502, { cause: new Error("the AI binding did not stream") });
      }
      const body = result as ReadableStream<Uint8Array>;
      // The binding takes no signal: a stop cancels its stream instead.
      if (signal.aborted) await body.cancel(signal.reason).catch(() => {});
      const events = workersAiEvents(body);
      // Cancelling the stream may not stop the inference behind it; a stop before its finish
      // is recorded at max_tokens anyway (src/stream/meter.ts), what it can still bill.
      return { provider: model.provider, events };
    },
  };
}
