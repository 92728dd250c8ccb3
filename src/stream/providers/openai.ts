/** @module An OpenAI-compatible chat-completions client that streams and asks for usage. */
import { EventSourceParserStream } from "eventsource-parser/stream";
import { AppError } from "../../errors";
import type { Provider, ProviderStream, UpstreamEvent } from "./provider";

/** A single SSE event from the upstream may not exceed this. */
const MAX_UPSTREAM_EVENT_BYTES = 256 * 1024;

interface ChatChunk {
  choices?: { delta?: { content?: unknown }; finish_reason?: unknown }[];
  usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } | null;
}

const isCount = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n) && n >= 0;

/** Turns the upstream's `data:` JSON chunks into UpstreamEvents; anything malformed errors the stream. */
export class ChatChunkStage extends TransformStream<{ data: string }, UpstreamEvent> {
  constructor() {
    super({
      transform(message, controller) {
        if (message.data === "[DONE]") return;
        let chunk: ChatChunk;
        try {
          chunk = JSON.parse(message.data) as ChatChunk;
        } catch {
          throw new Error("malformed upstream chunk");
        }
        if (typeof chunk !== "object" || chunk === null)
          throw new Error("malformed upstream chunk");
        for (const choice of chunk.choices ?? []) {
          const text = choice.delta?.content;
          if (typeof text === "string" && text.length > 0)
            controller.enqueue({ type: "delta", text });
          if (typeof choice.finish_reason === "string") {
            controller.enqueue({ type: "finish", reason: choice.finish_reason });
          }
        }
        const usage = chunk.usage;
        if (usage && isCount(usage.prompt_tokens) && isCount(usage.completion_tokens)) {
          controller.enqueue({
            type: "usage",
            inputTokens: usage.prompt_tokens,
            outputTokens: usage.completion_tokens,
          });
        }
      },
    });
  }
}

/** Builds the OpenAI-compatible provider; `fetchImpl` is a parameter so tests can watch calls. */
export function openAiProvider(
  options: { apiKey: string; baseUrl: string },
  fetchImpl: typeof fetch = fetch,
): Provider {
  return {
    async open({ model, message, maxTokens, signal }): Promise<ProviderStream> {
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
            model: model.upstreamName,
            messages: [{ role: "user", content: message }],
            stream: true,
            stream_options: { include_usage: true },
            max_tokens: maxTokens,
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
      const events = res.body
        .pipeThrough(new TextDecoderStream())
        .pipeThrough(
          new EventSourceParserStream({
            onError: "terminate",
            maxBufferSize: MAX_UPSTREAM_EVENT_BYTES,
          }),
        )
        .pipeThrough(new ChatChunkStage());
      return { provider: "openai", events };
    },
  };
}
