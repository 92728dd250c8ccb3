/** @module An OpenAI-compatible chat-completions client that streams and asks for usage. */
import { createParser } from "eventsource-parser";
import { AppError } from "../../errors";
import type { Provider, ProviderStream, UpstreamEvent, UpstreamReader } from "./provider";

/** A single SSE event from the upstream may not exceed this. */
const MAX_UPSTREAM_EVENT_BYTES = 256 * 1024;

interface ChatDelta {
  content?: unknown;
  reasoning_content?: unknown;
  reasoning?: unknown;
}

interface ChatChunk {
  error?: unknown;
  choices?: { delta?: ChatDelta; finish_reason?: unknown }[];
  usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } | null;
}

const isCount = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n) && n >= 0;

const push = (events: UpstreamEvent[], type: "delta" | "reasoning", text: unknown) => {
  if (typeof text === "string" && text.length > 0) events.push({ type, text });
};

/** Text of a Mistral thinking part: a string, or a list of `{type: "text", text}` parts. */
function thinkingText(thinking: unknown): string {
  if (typeof thinking === "string") return thinking;
  if (!Array.isArray(thinking)) return "";
  let text = "";
  for (const part of thinking as { text?: unknown }[]) {
    if (typeof part?.text === "string") text += part.text;
  }
  return text;
}

/**
 * Answer and reasoning text of one delta, kept apart: DeepSeek and vLLM send
 * `reasoning_content`, OpenRouter and Ollama `reasoning`, Mistral a `content` list whose
 * `thinking` parts are reasoning and whose `text` parts are the answer.
 */
function deltaEvents(delta: ChatDelta, events: UpstreamEvent[]): void {
  push(events, "reasoning", delta.reasoning_content);
  push(events, "reasoning", delta.reasoning);
  if (!Array.isArray(delta.content)) {
    push(events, "delta", delta.content);
    return;
  }
  for (const part of delta.content as { type?: unknown; text?: unknown; thinking?: unknown }[]) {
    if (part?.type === "text") push(events, "delta", part.text);
    else if (part?.type === "thinking") push(events, "reasoning", thinkingText(part.thinking));
  }
}

/** The UpstreamEvents of one `data:` JSON chunk; anything malformed throws. */
export function chatChunkEvents(data: string): UpstreamEvent[] {
  if (data === "[DONE]") return [];
  let chunk: ChatChunk;
  try {
    chunk = JSON.parse(data) as ChatChunk;
  } catch {
    throw new Error("malformed upstream chunk");
  }
  if (typeof chunk !== "object" || chunk === null) throw new Error("malformed upstream chunk");
  // OpenAI reports a failure mid-stream as an in-band error object.
  if (chunk.error !== undefined && chunk.error !== null) throw new Error("upstream error chunk");
  const events: UpstreamEvent[] = [];
  for (const choice of chunk.choices ?? []) {
    if (choice.delta) deltaEvents(choice.delta, events);
    if (typeof choice.finish_reason === "string") {
      events.push({ type: "finish", reason: choice.finish_reason });
    }
  }
  const usage = chunk.usage;
  if (usage && isCount(usage.prompt_tokens) && isCount(usage.completion_tokens)) {
    events.push({
      type: "usage",
      inputTokens: usage.prompt_tokens,
      outputTokens: usage.completion_tokens,
    });
  }
  return events;
}

/**
 * The upstream's SSE body as batches of UpstreamEvents: each read returns what the next body
 * chunks that carried any events said. A failure (a
 * lost connection, a malformed chunk, a stream cut short) is thrown only after the events that
 * arrived before it were returned, so no token the upstream did send is dropped.
 */
export function upstreamEvents(body: ReadableStream<Uint8Array>): UpstreamReader {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let batch: UpstreamEvent[] = [];
  let failure: unknown = null;
  let ended = false;
  let cancelled = false;
  // A stream that ends without `[DONE]` or a finish reason was cut short, not finished.
  let complete = false;
  const parser = createParser({
    maxBufferSize: MAX_UPSTREAM_EVENT_BYTES,
    onEvent: (message) => {
      if (message.data === "[DONE]") complete = true;
      for (const event of chatChunkEvents(message.data)) {
        if (event.type === "finish") complete = true;
        batch.push(event);
      }
    },
    // An oversized event ends the stream; other parse errors (an unknown field, a bad retry)
    // are ignored, as the SSE specification says.
    onError: (error) => {
      if (error.type === "max-buffer-size-exceeded") throw error;
    },
  });
  const feed = (text: string) => {
    try {
      parser.feed(text);
    } catch (e) {
      failure = e;
    }
  };
  return {
    async read() {
      for (;;) {
        if (cancelled) return null;
        if (batch.length > 0) {
          const out = batch;
          batch = [];
          return out;
        }
        if (failure !== null) {
          await reader.cancel().catch(() => {});
          throw failure;
        }
        if (ended) return null;
        let read: ReadableStreamReadResult<Uint8Array>;
        try {
          read = await reader.read();
        } catch (e) {
          failure ??= e;
          continue;
        }
        if (read.done) {
          ended = true;
          feed(decoder.decode());
          if (!complete && failure === null) failure = new Error("upstream stream ended early");
        } else {
          feed(decoder.decode(read.value, { stream: true }));
        }
      }
    },
    async cancel(reason) {
      cancelled = true;
      await reader.cancel(reason).catch(() => {});
    },
  };
}

/** Builds the OpenAI-compatible provider; `fetchImpl` is a parameter so tests can watch calls. */
export function openAiProvider(
  options: { apiKey: string; baseUrl: string },
  fetchImpl: typeof fetch = fetch,
): Provider {
  return {
    id: "openai",
    async open({ model, prompt, maxTokens, sampling, signal }): Promise<ProviderStream> {
      let res: Response;
      try {
        res = await fetchImpl(`${options.baseUrl}/chat/completions`, {
          method: "POST",
          headers: {
            Authorization: `Bearer ${options.apiKey}`,
            "Content-Type": "application/json",
            Accept: "text/event-stream",
          },
          body: JSON.stringify({
            ...sampling,
            model: model.upstreamName,
            messages: prompt,
            stream: true,
            stream_options: { include_usage: true },
            [model.maxTokensParam]: maxTokens,
          }),
          signal,
        });
      } catch (cause) {
        throw new AppError("upstream_error", "the model provider could not be reached", { cause });
      }
      if (res.status === 429) {
        await res.body?.cancel();
        const retry = Number(res.headers.get("Retry-After"));
        return Promise.reject(
          new AppError("upstream_busy", "the model provider is busy; try again shortly", {
            retryAfter: Number.isFinite(retry) && retry > 0 ? Math.min(retry, 300) : 10,
          }),
        );
      }
      if (!res.ok || !res.body) {
        await res.body?.cancel();
        throw new AppError("upstream_error", "the model provider answered with an error", {
          cause: new Error(`upstream status ${res.status}`),
        });
      }
      return { provider: "openai", events: upstreamEvents(res.body) };
    },
  };
}
