/** @module A wire format: how one surface writes a stream (its encoder and its 200 headers). */
import type { StreamRequest } from "../input/request";
import { type Encoder, frameEncoder } from "./frames";

/** The back end of one surface; the input adapter picks it, the stream stage runs it. */
export interface WireFormat {
  /** Headers of the 200 answer (besides the rate-limit headers and X-Stream-Id). */
  headers: Record<string, string>;
  /** A fresh encoder for one stream. */
  encoder(request: StreamRequest, startedAt: number): Encoder;
  /**
   * The answer is one object written at the end: the response waits for the stream, so a
   * failure still gets its own status instead of a 200 with an error inside.
   */
  buffered: boolean;
  /** Its streams run in a stream owner and can be resumed (when STREAM_RESUME_TTL_S > 0). */
  resumable: boolean;
}

/** Our own SSE events (`message_chunk`, `reasoning_chunk`, `heartbeat`, `done`, `error`). */
export const nativeSse: WireFormat = {
  headers: {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",
  },
  encoder: () => frameEncoder(),
  buffered: false,
  resumable: true,
};
