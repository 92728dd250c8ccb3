/** @module Every way a stream request can be malformed is refused with the right status before anything is spent, in the contract's order of checks. */
import { describe, expect, it } from "vitest";
import type { ErrorBody } from "../../src/errors";
import { call, testEnv } from "../helpers/app";
import { anonCaller, expectNothingSpent } from "../helpers/gate";
import {
  chunked,
  chunksOf,
  EMOJI,
  expectError,
  getQuery,
  type Init,
  jsonOfSize,
  KIB,
  postJson,
  STREAM,
  send,
} from "../helpers/input";
import { parseEvents } from "../helpers/sse";

interface BadCase {
  name: string;
  request: () => { path: string; init: Init };
  status: number;
  code: ErrorBody["error_code"];
  fields?: string[];
}

const post = (body: unknown, headers?: Record<string, string>) => () => ({
  path: STREAM,
  init: postJson(body, headers),
});
const get = (params: [string, string][]) => () => getQuery(params);
const invalid = (name: string, request: BadCase["request"], fields: string[]): BadCase => ({
  name,
  request,
  status: 422,
  code: "invalid_input",
  fields,
});

const BAD: BadCase[] = [
  invalid("rejects a message of 8193 ASCII characters", post({ message: "a".repeat(8193) }), [
    "message",
  ]),
  invalid(
    "rejects a message of 8193 ASCII characters in the query",
    get([["message", "a".repeat(8193)]]),
    ["message"],
  ),
  invalid("rejects a message of 8193 emoji", post({ message: EMOJI.repeat(8193) }), ["message"]),
  invalid(
    "rejects 8192 ASCII characters plus one emoji (8193 characters)",
    post({ message: `${"a".repeat(8192)}${EMOJI}` }),
    ["message"],
  ),
  invalid("rejects an empty message", post({ message: "" }), ["message"]),
  invalid("rejects a message of spaces only", post({ message: "   " }), ["message"]),
  invalid("rejects a message of a newline and a tab", post({ message: "\n\t" }), ["message"]),
  invalid("rejects an empty message in the query", get([["message", ""]]), ["message"]),
  invalid("rejects a whitespace message in the query", get([["message", " \n\t "]]), ["message"]),
  invalid("rejects a body without a message", post({}), ["message"]),
  invalid("rejects a body with a model but no message", post({ model: "gpt-4o" }), ["message"]),
  invalid("rejects a query without a message", get([]), ["message"]),
  invalid("rejects a message that is not a string", post({ message: 42 }), ["message"]),
  invalid("rejects a null message", post({ message: null }), ["message"]),
  invalid("rejects an unknown model", post({ message: "hi", model: "gpt-5-ultra" }), ["model"]),
  invalid(
    "rejects an unknown model in the query",
    get([
      ["message", "hi"],
      ["model", "nope"],
    ]),
    ["model"],
  ),
  invalid("rejects a model id in the wrong case", post({ message: "hi", model: "GPT-4O" }), [
    "model",
  ]),
  invalid(
    "rejects a stream_id of 65 characters",
    post({ message: "hi", stream_id: "a".repeat(65) }),
    ["stream_id"],
  ),
  invalid("rejects a stream_id with a space", post({ message: "hi", stream_id: "bad id" }), [
    "stream_id",
  ]),
  invalid("rejects a stream_id with a slash", post({ message: "hi", stream_id: "a/b" }), [
    "stream_id",
  ]),
  invalid(
    "rejects a stream_id with a non-ASCII letter",
    post({ message: "hi", stream_id: "caf\u00e9" }),
    ["stream_id"],
  ),
  invalid(
    "rejects a stream_id with a trailing newline",
    post({ message: "hi", stream_id: "abc\n" }),
    ["stream_id"],
  ),
  invalid("rejects an empty stream_id", post({ message: "hi", stream_id: "" }), ["stream_id"]),
  invalid(
    "rejects an empty stream_id in the query",
    get([
      ["message", "hi"],
      ["stream_id", ""],
    ]),
    ["stream_id"],
  ),
  invalid("rejects a numeric stream_id in JSON", post({ message: "hi", stream_id: 12345 }), [
    "stream_id",
  ]),
  invalid("rejects a cost cap of 0", post({ message: "hi", cost_cap_usd: 0 }), ["cost_cap_usd"]),
  invalid("rejects a negative cost cap", post({ message: "hi", cost_cap_usd: -0.1 }), [
    "cost_cap_usd",
  ]),
  invalid(
    "rejects a cost cap above COST_CAP_MAX_USD",
    post({ message: "hi", cost_cap_usd: 1.01 }),
    ["cost_cap_usd"],
  ),
  invalid("rejects a huge cost cap", post({ message: "hi", cost_cap_usd: 1e308 }), [
    "cost_cap_usd",
  ]),
  invalid(
    "rejects a cost cap too small to pay for one token",
    post({ message: "hi", cost_cap_usd: 1e-9 }),
    ["cost_cap_usd"],
  ),
  invalid(
    "rejects a cost cap sent as a string in JSON",
    post({ message: "hi", cost_cap_usd: "0.5" }),
    ["cost_cap_usd"],
  ),
  invalid("rejects a null cost cap in JSON", post({ message: "hi", cost_cap_usd: null }), [
    "cost_cap_usd",
  ]),
  invalid(
    "rejects cost_cap_usd=abc in the query",
    get([
      ["message", "hi"],
      ["cost_cap_usd", "abc"],
    ]),
    ["cost_cap_usd"],
  ),
  invalid(
    "rejects cost_cap_usd=0 in the query",
    get([
      ["message", "hi"],
      ["cost_cap_usd", "0"],
    ]),
    ["cost_cap_usd"],
  ),
  invalid(
    "rejects a negative cost_cap_usd in the query",
    get([
      ["message", "hi"],
      ["cost_cap_usd", "-1"],
    ]),
    ["cost_cap_usd"],
  ),
  invalid(
    "rejects cost_cap_usd=1.5 in the query",
    get([
      ["message", "hi"],
      ["cost_cap_usd", "1.5"],
    ]),
    ["cost_cap_usd"],
  ),
  invalid(
    "rejects cost_cap_usd=Infinity in the query",
    get([
      ["message", "hi"],
      ["cost_cap_usd", "Infinity"],
    ]),
    ["cost_cap_usd"],
  ),
  invalid("rejects an unknown field and names it", post({ message: "hi", temperature: 1 }), [
    "temperature",
  ]),
  invalid("rejects two unknown fields and names both", post({ message: "hi", a: 1, b: 2 }), [
    "a",
    "b",
  ]),
  invalid(
    "rejects an unknown query parameter and names it",
    get([
      ["message", "hi"],
      ["debug", "1"],
    ]),
    ["debug"],
  ),
  invalid(
    "rejects a prototype-polluting key as an unknown field",
    post('{"message":"hi","__proto__":{"x":1}}'),
    ["__proto__"],
  ),
  invalid(
    "names every failing field at once",
    post({ model: "nope", stream_id: "!", cost_cap_usd: 0 }),
    ["message", "model", "stream_id", "cost_cap_usd"],
  ),
  invalid(
    "rejects a duplicated message parameter",
    get([
      ["message", "a"],
      ["message", "b"],
    ]),
    ["message"],
  ),
  invalid(
    "rejects a duplicated model parameter",
    get([
      ["message", "a"],
      ["model", "gpt-4o"],
      ["model", "gpt-4o"],
    ]),
    ["model"],
  ),
  invalid("rejects malformed JSON", post('{"message": "hi"'), ["body"]),
  invalid("rejects an empty JSON body", post(""), ["body"]),
  invalid("rejects a JSON array body", post([{ message: "hi" }]), ["body"]),
  invalid("rejects a JSON null body", post("null"), ["body"]),
  invalid("rejects a JSON string body", post('"hi"'), ["body"]),
  invalid("rejects a JSON number body", post("42"), ["body"]),
  {
    name: "answers 413 for a body over 64 KiB with a Content-Length",
    request: () => {
      const body = jsonOfSize(64 * KIB + 1);
      return {
        path: STREAM,
        init: postJson(body, { "Content-Length": String(body.length) }),
      };
    },
    status: 413,
    code: "payload_too_large",
  },
  {
    name: "answers 413 for a chunked body over 64 KiB without a Content-Length",
    request: () => ({
      path: STREAM,
      init: {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: chunked(chunksOf(jsonOfSize(64 * KIB + 1))),
        duplex: "half",
      },
    }),
    status: 413,
    code: "payload_too_large",
  },
  {
    name: "answers 413 for a 1 MiB chunked body of garbage, before parsing it",
    request: () => ({
      path: STREAM,
      init: {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: chunked(Array.from({ length: 64 }, () => new Uint8Array(16 * KIB).fill(0x7b))),
        duplex: "half",
      },
    }),
    status: 413,
    code: "payload_too_large",
  },
  {
    name: "answers 415 for a POST with text/plain",
    request: () => ({
      path: STREAM,
      init: { method: "POST", headers: { "Content-Type": "text/plain" }, body: '{"message":"hi"}' },
    }),
    status: 415,
    code: "unsupported_media_type",
  },
  {
    name: "answers 415 for a POST without a content type",
    request: () => ({
      path: STREAM,
      init: { method: "POST", body: new TextEncoder().encode('{"message":"hi"}') },
    }),
    status: 415,
    code: "unsupported_media_type",
  },
  {
    name: "answers 415 for a POST of a form",
    request: () => ({
      path: STREAM,
      init: {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: "message=hi",
      },
    }),
    status: 415,
    code: "unsupported_media_type",
  },
  {
    name: "answers 415 for a look-alike JSON media type",
    request: () => ({
      path: STREAM,
      init: postJson({ message: "hi" }, { "Content-Type": "application/jsonp" }),
    }),
    status: 415,
    code: "unsupported_media_type",
  },
];

describe("a bad stream request", () => {
  for (const c of BAD) {
    it(`${c.name}, and spends nothing`, async () => {
      const who = await anonCaller();
      const { path, init } = c.request();
      const { res, settled } = await send(who, path, init);
      await expectError(res, c.status, c.code, c.fields);
      await settled();
      await expectNothingSpent(who);
    });
  }

  it("checks the body size before the media type (413 beats 415)", async () => {
    const who = await anonCaller();
    const body = jsonOfSize(64 * KIB + 1);
    const { res, settled } = await send(who, STREAM, {
      method: "POST",
      headers: { "Content-Type": "text/plain", "Content-Length": String(body.length) },
      body,
    });
    await expectError(res, 413, "payload_too_large");
    await settled();
    await expectNothingSpent(who);
  });

  it("checks authentication before the input (401 beats 422)", async () => {
    const { res, settled } = await call(STREAM, postJson({ message: "" }), testEnv());
    await expectError(res, 401, "unauthorized");
    await settled();
  });

  it("answers a bad input with one SSE error frame when the client accepts text/event-stream", async () => {
    const who = await anonCaller();
    const { res, settled } = await send(
      who,
      STREAM,
      postJson({ message: "hi", model: "nope" }, { Accept: "text/event-stream" }),
    );
    expect(res.status).toBe(422);
    expect(res.headers.get("Content-Type")).toMatch(/^text\/event-stream/);
    const all = parseEvents(await res.text());
    expect(all).toHaveLength(1);
    expect(all[0]?.event).toBe("error");
    expect(all[0]?.data.error_code).toBe("invalid_input");
    expect(all[0]?.data.fields).toEqual(["model"]);
    await settled();
    await expectNothingSpent(who);
  });

  it("rejects a cost cap above a lowered COST_CAP_MAX_USD", async () => {
    const who = await anonCaller();
    const env = testEnv({ COST_CAP_MAX_USD: "0.25" });
    const { res, settled } = await send(
      who,
      STREAM,
      postJson({ message: "hi", cost_cap_usd: 0.26 }),
      env,
    );
    await expectError(res, 422, "invalid_input", ["cost_cap_usd"]);
    await settled();
    await expectNothingSpent(who);
  });
});
