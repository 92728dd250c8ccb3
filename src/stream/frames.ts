/** @module Our SSE frames and the stage that encodes them; JSON data cannot break the framing. */
import { sseFrame } from "../errors";

/** One event of our stream, before encoding. */
export type Frame =
  | { event: "message_chunk"; data: { content: string; output_tokens: number; cost_usd: number } }
  | { event: "heartbeat"; data: { ts: number } }
  | { event: "done"; data: Record<string, unknown> }
  | { event: "error"; data: { error_code: string; detail: string; retry_after: number | null } };

/**
 * Encodes frames as `id:`/`event:`/`data:` lines with ids 1, 2, 3... The data is one line of
 * JSON, where newlines and `\r` are escaped, so model text like "\n\nevent: done" stays data.
 */
export function sseEncoder(): (frame: Frame) => Uint8Array {
  const encoder = new TextEncoder();
  let id = 0;
  return (frame) => encoder.encode(sseFrame(frame.event, frame.data, ++id));
}

/** `sseEncoder` as a stream stage. */
export class SseEncodeStage extends TransformStream<Frame, Uint8Array> {
  constructor() {
    const encode = sseEncoder();
    super({
      transform(frame, controller) {
        controller.enqueue(encode(frame));
      },
    });
  }
}
