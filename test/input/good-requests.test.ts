/** @module Stream requests at the edges of what is valid are accepted and stream to done. */
import { afterEach, describe, expect, it, vi } from "vitest";
import { anonCaller, usageOf } from "../helpers/gate";
import {
  chunked,
  chunksOf,
  EMOJI,
  expectStream,
  getQuery,
  type Init,
  jsonOfSize,
  KIB,
  postJson,
  STREAM,
  send,
} from "../helpers/input";
import { pinClock } from "../helpers/stores";

// pinClock stops the clock for a test; the next starts with the real one.
afterEach(() => {
  vi.useRealTimers();
});

describe("a good stream request", () => {
  it("streams for a valid GET and ends with done", async () => {
    const who = await anonCaller();
    const done = await expectStream(await send(who, `${STREAM}?message=hello`, {}));
    expect(done.model).toBe("gpt-4o-mini");
  });

  it("streams for a valid POST and ends with done", async () => {
    const who = await anonCaller();
    const done = await expectStream(await send(who, STREAM, postJson({ message: "hello" })));
    expect(done.model).toBe("gpt-4o-mini");
  });

  it("spends one request and one quota unit, which the checks above would see", async () => {
    // Exact hourly counts: no turn of the hour during the test.
    pinClock(3_600_000, 60_000);
    const who = await anonCaller();
    await expectStream(await send(who, STREAM, postJson({ message: "hello" })));
    const u = await usageOf(who);
    expect(u.limits.user.remaining).toBe(u.limits.user.limit - 1);
    expect(u.limits.ip.remaining).toBe(u.limits.ip.limit - 1);
    expect(u.quota?.hourly.remaining).toBe((u.quota?.hourly.limit ?? 0) - 1);
    expect(u.quota?.total.remaining).toBe((u.quota?.total.limit ?? 0) - 1);
  });

  it("accepts a message of exactly 8192 ASCII characters", async () => {
    await expectStream(
      await send(await anonCaller(), STREAM, postJson({ message: "a".repeat(8192) })),
    );
  });

  it("accepts a message of exactly 8192 ASCII characters in the query", async () => {
    const { path } = getQuery([["message", "a".repeat(8192)]]);
    await expectStream(await send(await anonCaller(), path, {}));
  });

  it("accepts a message of 8192 emoji (16384 UTF-16 code units)", async () => {
    await expectStream(
      await send(await anonCaller(), STREAM, postJson({ message: EMOJI.repeat(8192) })),
    );
  });

  it("accepts 8191 ASCII characters plus one emoji", async () => {
    const message = `${"a".repeat(8191)}${EMOJI}`;
    await expectStream(await send(await anonCaller(), STREAM, postJson({ message })));
  });

  it("accepts a stream_id of 64 characters and echoes it", async () => {
    const streamId = `${"A".repeat(30)}_${"z".repeat(30)}-12`;
    expect(streamId).toHaveLength(64);
    const sent = await send(
      await anonCaller(),
      STREAM,
      postJson({ message: "hi", stream_id: streamId }),
    );
    expect(sent.res.headers.get("X-Stream-Id")).toBe(streamId);
    const done = await expectStream(sent);
    expect(done.stream_id).toBe(streamId);
  });

  it("accepts each registered model", async () => {
    for (const model of ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"]) {
      const done = await expectStream(
        await send(await anonCaller(), STREAM, postJson({ message: "hi", model })),
      );
      expect(done.model).toBe(model);
    }
  });

  it("accepts a cost cap equal to COST_CAP_MAX_USD, in JSON and in the query", async () => {
    await expectStream(
      await send(await anonCaller(), STREAM, postJson({ message: "hi", cost_cap_usd: 1 })),
    );
    const { path } = getQuery([
      ["message", "hi"],
      ["cost_cap_usd", "1.00"],
    ]);
    await expectStream(await send(await anonCaller(), path, {}));
  });

  it("accepts a decimal cost cap in the query", async () => {
    const { path } = getQuery([
      ["message", "hi"],
      ["cost_cap_usd", "0.25"],
    ]);
    await expectStream(await send(await anonCaller(), path, {}));
  });

  it("accepts application/json with a charset and in any letter case", async () => {
    const init = postJson({ message: "hi" }, { "Content-Type": "Application/JSON; charset=utf-8" });
    await expectStream(await send(await anonCaller(), STREAM, init));
  });

  it("accepts a body of exactly 64 KiB with a Content-Length", async () => {
    const body = jsonOfSize(64 * KIB);
    const init = postJson(body, { "Content-Length": String(body.length) });
    await expectStream(await send(await anonCaller(), STREAM, init));
  });

  it("accepts a chunked body of exactly 64 KiB", async () => {
    const init: Init = {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: chunked(chunksOf(jsonOfSize(64 * KIB))),
      duplex: "half",
    };
    await expectStream(await send(await anonCaller(), STREAM, init));
  });
});
