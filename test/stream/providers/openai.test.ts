/** @module The OpenAI-compatible provider over a stub fetch: its events, its end, and its faults. */
import { describe, expect, it } from "vitest";
import { delta, drain, openStub, sseChunk, streamOf, upstreamBody } from "../../helpers/stubs";

describe("openAiProvider", () => {
  it("asks for usage and max_tokens, and turns chunks into events", async () => {
    const { stream, sent } = await openStub(
      upstreamBody(
        [
          delta("Hi"),
          delta(" there"),
          sseChunk({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }] }),
          sseChunk({ choices: [], usage: { prompt_tokens: 9, completion_tokens: 2 } }),
          "data: [DONE]\n\n",
        ],
        "close",
      ),
    );
    expect(sent()).toMatchObject({
      model: "gpt-4o-mini",
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 33,
    });
    expect(await drain(stream.events)).toEqual([
      { type: "delta", text: "Hi" },
      { type: "delta", text: " there" },
      { type: "finish", reason: "stop" },
      { type: "usage", inputTokens: 9, outputTokens: 2 },
    ]);
  });

  it("errors the event stream on an event larger than 256 KiB", async () => {
    const { stream } = await openStub(
      upstreamBody([delta("a"), `data: ${"x".repeat(300 * 1024)}`], "close"),
    );
    await expect(drain(stream.events)).rejects.toThrow();
  });

  it("errors the event stream on a malformed chunk", async () => {
    const { stream } = await openStub(upstreamBody([delta("a"), "data: {nope\n\n"], "close"));
    await expect(drain(stream.events)).rejects.toThrow("malformed upstream chunk");
  });

  it("errors the event stream when the body ends without [DONE] or a finish reason", async () => {
    const { stream } = await openStub(upstreamBody([delta("a"), delta("b")], "close"));
    await expect(drain(stream.events)).rejects.toThrow("ended early");
  });

  it("errors the event stream on an in-band error object", async () => {
    const { stream } = await openStub(
      upstreamBody([delta("a"), sseChunk({ error: { message: "overloaded" } })], "close"),
    );
    await expect(drain(stream.events)).rejects.toThrow("upstream error chunk");
  });

  it("ignores SSE fields it does not know, as the specification says", async () => {
    const { stream } = await openStub(
      upstreamBody([`x-trace: 1\n${delta("a")}`, ": keep-alive\n\n", "data: [DONE]\n\n"], "close"),
    );
    expect(await drain(stream.events)).toEqual([{ type: "delta", text: "a" }]);
  });

  it("refuses 429 as upstream_busy and other statuses as upstream_error, without their text", async () => {
    const secret = () => streamOf([new TextEncoder().encode("sk-live secret upstream internals")]);
    await expect(openStub(secret(), 429, { "Retry-After": "7" })).rejects.toMatchObject({
      code: "upstream_busy",
      retryAfter: 7,
    });
    const failed = openStub(secret(), 500);
    await expect(failed).rejects.toMatchObject({ code: "upstream_error" });
    await failed.catch((e: { detail: string }) => expect(e.detail).not.toContain("sk-live"));
  });
});
