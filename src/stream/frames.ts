/** @module Our SSE frames and their encoding; JSON data cannot break the framing. */
import { sseFrame } from "../errors";

/** What `done` says; a surface's encoder reads its figures too. */
export interface DoneData {
  stream_id: string;
  model: string;
  provider: string;
  /** The answering target's own model name (null for the built-in demo). */
  upstream_model: string | null;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
  ttft_ms: number | null;
  duration_ms: number;
  finish_reason: string;
  usage_source: "upstream" | "estimated";
  /** The anonymous quota, for anonymous callers. */
  quota?: { hourly_remaining: number; total_remaining: number };
}

/** One event of our stream, before encoding. */
export type Frame =
  | { event: "message_chunk"; data: { content: string; output_tokens: number; cost_usd: number } }
  | { event: "reasoning_chunk"; data: { content: string } }
  /** A piece of a function call; only the OpenAI encoders write it (the native API has no tools). */
  | {
      event: "tool_call_chunk";
      data: { index: number; id?: string; name?: string; arguments: string };
    }
  | { event: "heartbeat"; data: { ts: number } }
  | { event: "done"; data: DoneData }
  | { event: "error"; data: { error_code: string; detail: string; retry_after: number | null } };

/**
 * Turns one stream's frames into the bytes of a wire format, in order; null writes nothing
 * (a format that answers with one object at the end). One per stream: it may keep state.
 */
export type Encoder = (frames: Frame[]) => Uint8Array | null;

/**
 * The native encoder for one stream: frames become `id:`/`event:`/`data:` lines with ids 1, 2, 3...,
 * in the order they are encoded. The data is one line of JSON, where newlines and `\r` are
 * escaped, so model text like "\n\nevent: done" stays data.
 */
export function frameEncoder(): Encoder {
  const encoder = new TextEncoder();
  let id = 0;
  return (frames) => {
    let text = "";
    for (const frame of frames) {
      if (frame.event === "tool_call_chunk") continue;
      text += sseFrame(frame.event, frame.data, ++id);
    }
    return encoder.encode(text);
  };
}
