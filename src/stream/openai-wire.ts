/**
 * @module The OpenAI wire formats: `chat.completion.chunk` SSE for `stream: true`, one
 * `chat.completion` object otherwise. Same frames in, OpenAI's shapes out.
 */
import { openAiErrorBody } from "../errors";
import type { StreamRequest } from "../input/request";
import type { DoneData, Encoder, Frame } from "./frames";
import type { WireFormat } from "./wire";

/** Our finish reasons in OpenAI's words: a stop by the cap or the clock is a `length`. */
const FINISH: Record<string, string> = {
  stop: "stop",
  length: "length",
  content_filter: "content_filter",
  cost_cap: "length",
  max_duration: "length",
};

/**
 * The finish reason in OpenAI's words: an answer that called functions and then stopped
 * finished with `tool_calls`, whatever the provider named it (Anthropic's `tool_use`).
 */
const finishOf = (done: DoneData, calledTools: boolean) => {
  const reason = FINISH[done.finish_reason] ?? "stop";
  return calledTools && reason === "stop" ? "tool_calls" : reason;
};

type ToolPiece = Extract<Frame, { event: "tool_call_chunk" }>["data"];

/** One piece of a function call as OpenAI streams it: id, type and name on the call's first piece. */
function toolCallDelta(p: ToolPiece): Record<string, unknown> {
  const fn: Record<string, string> = {};
  if (p.name !== undefined) fn.name = p.name;
  fn.arguments = p.arguments;
  const call: Record<string, unknown> = { index: p.index };
  if (p.id !== undefined) Object.assign(call, { id: p.id, type: "function" });
  call.function = fn;
  return { tool_calls: [call] };
}

/** OpenAI's usage object, plus what the stream cost. */
function usage(done: DoneData) {
  return {
    prompt_tokens: done.input_tokens,
    completion_tokens: done.output_tokens,
    total_tokens: done.input_tokens + done.output_tokens,
    cost_usd: done.cost_usd,
  };
}

/** The fields every object of one completion shares. */
function head(request: StreamRequest, startedAt: number, object: string) {
  return {
    id: `chatcmpl-${request.streamId}`,
    object,
    created: Math.floor(startedAt / 1000),
    model: request.model.id,
  };
}

const utf8 = new TextEncoder();
const data = (value: unknown) => `data: ${JSON.stringify(value)}\n\n`;

/** `chat.completion.chunk` objects as `data:` lines, then `data: [DONE]`. */
export function openAiChunks(includeUsage: boolean): WireFormat {
  return {
    headers: {
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-store",
      "X-Accel-Buffering": "no",
    },
    buffered: false,
    resumable: false,
    encoder(request, startedAt): Encoder {
      const base = head(request, startedAt, "chat.completion.chunk");
      // Every chunk starts the same: its JSON is built once, so a token costs one small stringify.
      const prefix = `data: ${JSON.stringify(base).slice(0, -1)},"choices":[{"index":0,"delta":`;
      let first = true;
      let calledTools = false;
      const chunk = (delta: Record<string, unknown>, finish: string | null = null) => {
        // The first delta names the role, as OpenAI's does.
        const d = first ? { role: "assistant", ...delta } : delta;
        first = false;
        return `${prefix}${JSON.stringify(d)},"finish_reason":${JSON.stringify(finish)}}]}\n\n`;
      };
      return (frames: Frame[]) => {
        let text = "";
        for (const f of frames) {
          if (f.event === "message_chunk") text += chunk({ content: f.data.content });
          else if (f.event === "reasoning_chunk") {
            text += chunk({ reasoning_content: f.data.content });
          } else if (f.event === "tool_call_chunk") {
            calledTools = true;
            text += chunk(toolCallDelta(f.data));
          } else if (f.event === "heartbeat") text += ": keep-alive\n\n";
          else if (f.event === "done") {
            text += chunk({}, finishOf(f.data, calledTools));
            if (includeUsage) text += data({ ...base, choices: [], usage: usage(f.data) });
            text += "data: [DONE]\n\n";
          } else {
            text += data(openAiErrorBody(f.data.error_code, f.data.detail, null));
          }
        }
        return utf8.encode(text);
      };
    },
  };
}

/** One `chat.completion` object, written when the stream ends. */
export const openAiCompletion: WireFormat = {
  headers: { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store" },
  buffered: true,
  resumable: false,
  encoder(request, startedAt): Encoder {
    let content = "";
    let reasoning = "";
    const calls: { id: string; type: "function"; function: { name: string; arguments: string } }[] =
      [];
    return (frames: Frame[]) => {
      for (const f of frames) {
        if (f.event === "message_chunk") content += f.data.content;
        else if (f.event === "reasoning_chunk") reasoning += f.data.content;
        else if (f.event === "tool_call_chunk") {
          const p = f.data;
          calls[p.index] ??= { id: "", type: "function", function: { name: "", arguments: "" } };
          const call = calls[p.index] as (typeof calls)[number];
          if (p.id !== undefined) call.id = p.id;
          if (p.name !== undefined) call.function.name += p.name;
          call.function.arguments += p.arguments;
        } else if (f.event === "done") {
          const toolCalls = calls.filter(Boolean);
          const message: Record<string, unknown> = {
            role: "assistant",
            content: content === "" && toolCalls.length > 0 ? null : content,
          };
          if (reasoning) message.reasoning_content = reasoning;
          if (toolCalls.length > 0) message.tool_calls = toolCalls;
          return utf8.encode(
            JSON.stringify({
              ...head(request, startedAt, "chat.completion"),
              choices: [
                {
                  index: 0,
                  message,
                  finish_reason: finishOf(f.data, toolCalls.length > 0),
                  logprobs: null,
                },
              ],
              usage: usage(f.data),
            }),
          );
        }
      }
      // Nothing until the end; a failed stream is answered with its error status instead.
      return null;
    };
  },
};
