/**
 * @module Anthropic's Messages API, streamed natively: the system prompt to `system`, the key in
 * `x-api-key`, `max_tokens` always; text deltas are the answer, thinking deltas reasoning, usage
 * from `message_start` and `message_delta`, an `error` event ends the stream as a failure.
 */
import type { EventSourceMessage } from "eventsource-parser";
import { anthropicMessages, anthropicTooling } from "./anthropic-tools";
import { fetchUpstream } from "./failure";
import type { ProviderRequest, TargetAdapter, UpstreamEvent, UpstreamReader } from "./provider";
import { sseEvents } from "./sse";

export const ANTHROPIC_VERSION = "2023-06-01";
/** Anthropic's smallest thinking budget; a stream that cannot afford more output does not think. */
const MIN_THINKING_TOKENS = 1024;

/** Anthropic's stop reasons in ours (the session maps the rest to `stop`). */
const STOP: Record<string, string> = {
  end_turn: "stop",
  stop_sequence: "stop",
  max_tokens: "length",
  refusal: "content_filter",
  tool_use: "tool_calls",
};

interface AnthropicUsage {
  input_tokens?: unknown;
  cache_creation_input_tokens?: unknown;
  cache_read_input_tokens?: unknown;
  output_tokens?: unknown;
}

interface AnthropicEvent {
  type?: unknown;
  index?: unknown;
  message?: { usage?: AnthropicUsage };
  content_block?: { type?: unknown; id?: unknown; name?: unknown };
  delta?: {
    type?: unknown;
    text?: unknown;
    thinking?: unknown;
    partial_json?: unknown;
    stop_reason?: unknown;
  };
  usage?: AnthropicUsage;
}

const count = (n: unknown) => (typeof n === "number" && Number.isInteger(n) && n >= 0 ? n : 0);

/** Input tokens as billed: uncached input plus cache writes and reads. */
const inputOf = (u: AnthropicUsage) =>
  count(u.input_tokens) + count(u.cache_creation_input_tokens) + count(u.cache_read_input_tokens);

/** The request body: system messages joined into `system`, the rest in order. */
export function anthropicBody(request: ProviderRequest): Record<string, unknown> {
  const { model, prompt, maxTokens, sampling } = request;
  const system = prompt.filter((m) => m.role === "system").map((m) => m.content);
  const body: Record<string, unknown> = {
    model: model.upstreamName,
    max_tokens: maxTokens,
    messages: anthropicMessages(prompt),
    ...anthropicTooling(request.tooling),
    stream: true,
  };
  if (system.length > 0) body.system = system.join("\n\n");
  if (sampling?.temperature !== undefined) body.temperature = Math.min(1, sampling.temperature);
  if (sampling?.top_p !== undefined) body.top_p = sampling.top_p;
  if (sampling?.stop !== undefined) {
    body.stop_sequences = typeof sampling.stop === "string" ? [sampling.stop] : sampling.stop;
  }
  // Thinking is part of max_tokens; its budget must be below it (and at least 1024).
  if (model.reasoning && maxTokens > MIN_THINKING_TOKENS + 1) {
    body.thinking = {
      type: "enabled",
      budget_tokens: Math.max(MIN_THINKING_TOKENS, Math.floor((maxTokens * 3) / 4)),
    };
    delete body.temperature;
    delete body.top_p;
  }
  return body;
}

/** The stream's SSE body as UpstreamEvents; a body that ends before `message_stop` was cut short. */
export function anthropicEvents(body: ReadableStream<Uint8Array>): UpstreamReader {
  let complete = false;
  let inputTokens = 0;
  // Content block index -> the tool call's index among this answer's calls (OpenAI's numbering).
  const calls = new Map<unknown, number>();
  const onMessage = (message: EventSourceMessage, batch: UpstreamEvent[]) => {
    let event: AnthropicEvent;
    try {
      event = JSON.parse(message.data) as AnthropicEvent;
    } catch {
      throw new Error("malformed upstream event");
    }
    switch (event?.type) {
      case "message_start":
        inputTokens = inputOf(event.message?.usage ?? {});
        return;
      case "content_block_start": {
        const b = event.content_block;
        if (b?.type !== "tool_use") return;
        if (typeof b.id !== "string" || typeof b.name !== "string") {
          throw new Error("malformed upstream tool_use");
        }
        calls.set(event.index, calls.size);
        batch.push({
          type: "tool_call",
          index: calls.size - 1,
          id: b.id,
          name: b.name,
          arguments: "",
        });
        return;
      }
      case "content_block_delta": {
        const d = event.delta;
        if (d?.type === "input_json_delta") {
          const index = calls.get(event.index);
          if (index === undefined) throw new Error("input_json_delta outside a tool_use block");
          const args = typeof d.partial_json === "string" ? d.partial_json : "";
          if (args) batch.push({ type: "tool_call", index, arguments: args });
        } else if (d?.type === "text_delta" && typeof d.text === "string" && d.text) {
          batch.push({ type: "delta", text: d.text });
        } else if (d?.type === "thinking_delta" && typeof d.thinking === "string" && d.thinking) {
          batch.push({ type: "reasoning", text: d.thinking });
        }
        return;
      }
      case "message_delta": {
        // Usage here is cumulative; some versions repeat the input count, most send 0 or none.
        const usage = event.usage ?? {};
        inputTokens = Math.max(inputTokens, inputOf(usage));
        // Only real counts are the provider's word: a missing output count, or no input count
        // at all, leaves the record at its upper bound rather than at zero.
        const output = usage.output_tokens;
        if (
          typeof output === "number" &&
          Number.isInteger(output) &&
          output >= 0 &&
          inputTokens > 0
        )
          batch.push({ type: "usage", inputTokens, outputTokens: output });
        const stop = event.delta?.stop_reason;
        if (typeof stop === "string") batch.push({ type: "finish", reason: STOP[stop] ?? "stop" });
        return;
      }
      case "message_stop":
        complete = true;
        return;
      case "error":
        // e.g. overloaded_error mid-stream: the session ends the stream with upstream_error.
        throw new Error("upstream error event");
      default:
        // ping, content_block_stop, and event types added later.
        return;
    }
  };
  return sseEvents(body, onMessage, () => complete);
}

/** The Anthropic target: `base_url` is the part before `/messages`. */
export function anthropicTarget(
  options: { baseUrl: string; headers?: Readonly<Record<string, string>> },
  fetchImpl: typeof fetch = fetch,
): TargetAdapter {
  const url = `${options.baseUrl}/messages`;
  return {
    async open(request, key) {
      const res = await fetchUpstream(fetchImpl, url, {
        method: "POST",
        headers: {
          ...(key ? { "x-api-key": key } : {}),
          "anthropic-version": ANTHROPIC_VERSION,
          ...options.headers,
          "content-type": "application/json",
          accept: "text/event-stream",
        },
        body: JSON.stringify(anthropicBody(request)),
        signal: request.signal,
      });
      return { provider: request.model.provider, events: anthropicEvents(res.body) };
    },
  };
}
