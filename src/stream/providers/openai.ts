/** @module An OpenAI-compatible chat-completions client that streams and asks for usage. */
import { fetchUpstream } from "./failure";
import { openAiMessage, openAiTooling } from "./openai-body";
import type {
  Provider,
  ProviderStream,
  TargetAdapter,
  UpstreamEvent,
  UpstreamReader,
} from "./provider";
import { sseEvents } from "./sse";

interface ChatDelta {
  content?: unknown;
  reasoning_content?: unknown;
  reasoning?: unknown;
  tool_calls?: unknown;
}

interface ToolCallDelta {
  index?: unknown;
  id?: unknown;
  function?: { name?: unknown; arguments?: unknown } | null;
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
  if (Array.isArray(delta.tool_calls)) toolCallEvents(delta.tool_calls, events);
  if (!Array.isArray(delta.content)) {
    push(events, "delta", delta.content);
    return;
  }
  for (const part of delta.content as { type?: unknown; text?: unknown; thinking?: unknown }[]) {
    if (part?.type === "text") push(events, "delta", part.text);
    else if (part?.type === "thinking") push(events, "reasoning", thinkingText(part.thinking));
  }
}

const str = (v: unknown) => (typeof v === "string" ? v : undefined);

/**
 * `delta.tool_calls` pieces: the first of a call names its `id` and `name`, later ones add
 * `arguments`. A piece without a whole-number index is malformed.
 */
function toolCallEvents(calls: ToolCallDelta[], events: UpstreamEvent[]): void {
  for (const call of calls) {
    if (!isCount(call?.index)) throw new Error("malformed upstream tool call");
    const id = str(call.id);
    const name = str(call.function?.name);
    const args = str(call.function?.arguments) ?? "";
    if (id === undefined && name === undefined && args === "") continue;
    events.push({
      type: "tool_call",
      index: call.index,
      ...(id !== undefined ? { id } : {}),
      ...(name !== undefined ? { name } : {}),
      arguments: args,
    });
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
  // A prompt is never 0 tokens: such a usage is no count at all, and the record keeps its bound.
  if (
    usage &&
    isCount(usage.prompt_tokens) &&
    usage.prompt_tokens > 0 &&
    isCount(usage.completion_tokens)
  ) {
    events.push({
      type: "usage",
      inputTokens: usage.prompt_tokens,
      outputTokens: usage.completion_tokens,
    });
  }
  return events;
}

/**
 * The upstream's SSE body as batches of UpstreamEvents (see sseEvents): a stream that ends
 * without `[DONE]` or a finish reason was cut short, not finished.
 */
export function upstreamEvents(body: ReadableStream<Uint8Array>): UpstreamReader {
  let complete = false;
  return sseEvents(
    body,
    (message, batch) => {
      if (message.data === "[DONE]") complete = true;
      for (const event of chatChunkEvents(message.data)) {
        if (event.type === "finish") complete = true;
        batch.push(event);
      }
    },
    () => complete,
  );
}

/** One OpenAI-compatible target's open: the key and extra headers are the route's choice. */
export function openAiTarget(
  options: { baseUrl: string; headers?: Readonly<Record<string, string>> },
  fetchImpl: typeof fetch = fetch,
): TargetAdapter {
  const url = `${options.baseUrl}/chat/completions`;
  return {
    async open({ model, prompt, maxTokens, sampling, tooling, signal }, key) {
      const res = await fetchUpstream(fetchImpl, url, {
        method: "POST",
        headers: {
          ...(key ? { Authorization: `Bearer ${key}` } : {}),
          ...options.headers,
          "Content-Type": "application/json",
          Accept: "text/event-stream",
        },
        body: JSON.stringify({
          ...sampling,
          model: model.upstreamName,
          messages: prompt.map(openAiMessage),
          ...openAiTooling(tooling),
          stream: true,
          stream_options: { include_usage: true },
          [model.maxTokensParam]: maxTokens,
        }),
        signal,
      });
      return { provider: model.provider, events: upstreamEvents(res.body) };
    },
  };
}

/** Builds the OpenAI-compatible provider; `fetchImpl` is a parameter so tests can watch calls. */
export function openAiProvider(
  options: { apiKey: string; baseUrl: string },
  fetchImpl: typeof fetch = fetch,
): Provider {
  const target = openAiTarget({ baseUrl: options.baseUrl }, fetchImpl);
  return {
    id: "openai",
    async open(request): Promise<ProviderStream> {
      return { ...(await target.open(request, options.apiKey)), provider: "openai" };
    },
  };
}
