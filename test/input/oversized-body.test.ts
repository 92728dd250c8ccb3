/**
 * @module The 413 for an over-long body is a lingering close: it is answered at once while the
 * rest of the body is still read and dropped (closing on an unread body resets the connection,
 * which can destroy the answer in flight), and the body is let go of within the drain's bounds:
 * when it ends, after DRAIN_MAX_BYTES, or after a second.
 */
import { describe, expect, it, vi } from "vitest";
import type { ErrorBody } from "../../src/errors";
import { DRAIN_MAX_BYTES } from "../../src/input/validate";
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
    // The whole answer can be read while the body is still being read.
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    expect(cancelled).toBe(false);
    const answer = JSON.parse(new TextDecoder().decode(first.value)) as ErrorBody;
    expect(answer.error_code).toBe("payload_too_large");
    // Then the stream ends, once the drain has let go of the body.
    expect((await reader.read()).done).toBe(true);
    await sent.cancelled;
    await settled();
    // Read on after the 413: more than the 64 KiB that decided it.
    expect(sent.pulled()).toBeGreaterThan(64 * KIB + CHUNK.byteLength);
  });

  it("reads a fast endless body no further than DRAIN_MAX_BYTES past the limit", async () => {
    const sent = body("endless");
    const { res, settled } = await post(sent.stream);
    expect(res.status).toBe(413);
    await res.arrayBuffer();
    await sent.cancelled;
    await settled();
    // The chunk that passed 64 KiB, then the drain's bytes, and what the stream queued ahead.
    expect(sent.pulled()).toBeLessThanOrEqual(80 * KIB + DRAIN_MAX_BYTES + 2 * CHUNK.byteLength);
  });

  it("reads a declared over-long body to its end, and says how much on the access line", async () => {
    const lines: string[] = [];
    const log = vi.spyOn(console, "log").mockImplementation((line: unknown) => {
      lines.push(String(line));
    });
    const total = 4 * 1024 * KIB;
    const sent = body(total);
    try {
      const { res, settled } = await post(sent.stream, { "Content-Length": String(total) });
      expect(res.status).toBe(413);
      expect(((await res.json()) as ErrorBody).error_code).toBe("payload_too_large");
      await settled();
    } finally {
      log.mockRestore();
    }
    expect(sent.ended()).toBe(true);
    expect(sent.pulled()).toBe(total);
    const access = lines.map((l) => JSON.parse(l)).filter((l) => l.event === "request");
    expect(access).toMatchObject([
      { status: 413, error_code: "payload_too_large", drained_bytes: total },
    ]);
  });
});
