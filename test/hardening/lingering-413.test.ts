/**
 * @module The 413 for an over-long body is a lingering close: it is answered at once while the
 * rest of the body is still read and dropped (closing on an unread body resets the connection,
 * which can destroy the answer in flight), and the body is let go of within the drain's bounds:
 * when it ends, after 16 MiB, or after a second.
 */
import { describe, expect, it } from "vitest";
import type { ErrorBody } from "../../src/errors";
import { call } from "../helpers/app";
import { anonToken, bearer } from "../helpers/tokens";

const KIB = 1024;
/** 16 KiB of the start of a JSON body. */
const CHUNK = new TextEncoder().encode(`{"message":"${"x".repeat(16 * KIB - 12)}`);

/** A request body of `total` bytes (or endless), `gapMs` apart, that tells how much was read. */
function body(total: number | "endless", gapMs = 0) {
  let pulled = 0;
  let cancel: () => void = () => {};
  const cancelled = new Promise<void>((resolve) => {
    cancel = resolve;
  });
  let done = false;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs));
      if (total !== "endless" && pulled >= total) {
        done = true;
        return controller.close();
      }
      controller.enqueue(CHUNK);
      pulled += CHUNK.byteLength;
    },
    cancel() {
      cancel();
    },
  });
  return { stream, pulled: () => pulled, cancelled, ended: () => done };
}

async function post(stream: ReadableStream<Uint8Array>, headers: Record<string, string> = {}) {
  return call("/api/v1/stream", {
    method: "POST",
    headers: { ...bearer(await anonToken()), "Content-Type": "application/json", ...headers },
    body: stream,
    duplex: "half",
  } as RequestInit);
}

describe("a 413 for an over-long body", () => {
  it("is answered while a slow endless body is still being read, which is let go of after a second", async () => {
    // 16 KiB every 20 ms: the byte bound is far away, so only the time bound ends the drain.
    const sent = body("endless", 20);
    let cancelled = false;
    void sent.cancelled.then(() => {
      cancelled = true;
    });
    const { res, settled } = await post(sent.stream);
    expect(res.status).toBe(413);
    expect(cancelled).toBe(false);
    expect(((await res.json()) as ErrorBody).error_code).toBe("payload_too_large");
    await sent.cancelled;
    await settled();
    // Read on after the 413: more than the 64 KiB that decided it.
    expect(sent.pulled()).toBeGreaterThan(64 * KIB + CHUNK.byteLength);
  });

  it("reads a fast endless body no further than 16 MiB past the limit", async () => {
    const sent = body("endless");
    const { res, settled } = await post(sent.stream);
    expect(res.status).toBe(413);
    await res.arrayBuffer();
    await sent.cancelled;
    await settled();
    // The chunk that passed 64 KiB, then 16 MiB, and what the stream queued ahead of the reads.
    expect(sent.pulled()).toBeLessThanOrEqual(80 * KIB + 16 * 1024 * KIB + 2 * CHUNK.byteLength);
    expect(sent.pulled()).toBeGreaterThan(16 * 1024 * KIB);
  });

  it("reads a declared over-long body to its end, then answers nothing more", async () => {
    const total = 4 * 1024 * KIB;
    const sent = body(total);
    const { res, settled } = await post(sent.stream, { "Content-Length": String(total) });
    expect(res.status).toBe(413);
    expect(((await res.json()) as ErrorBody).error_code).toBe("payload_too_large");
    await settled();
    expect(sent.ended()).toBe(true);
    expect(sent.pulled()).toBe(total);
  });
});
