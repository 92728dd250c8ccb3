/** @module Our SSE frames and their encoding; JSON data cannot break the framing. */
import { sseFrame } from "../errors";

/** One event of our stream, before encoding. */
export type Frame =
  | { event: "message_chunk"; data: { content: string; output_tokens: number; cost_usd: number } }
  | { event: "heartbeat"; data: { ts: number } }
  | { event: "done"; data: Record<string, unknown> }
  | { event: "error"; data: { error_code: string; detail: string; retry_after: number | null } };

/**
 * An encoder for one stream: frames become `id:`/`event:`/`data:` lines with ids 1, 2, 3...,
 * in the order they are encoded. The data is one line of JSON, where newlines and `\r` are
 * escaped, so model text like "\n\nevent: done" stays data.
 */
export function frameEncoder(): (frames: Frame[]) => Uint8Array {
  const encoder = new TextEncoder();
  let id = 0;
  return (frames) => {
    let text = "";
    for (const frame of frames) text += sseFrame(frame.event, frame.data, ++id);
    return encoder.encode(text);
  };
}
