/** @module Input validation in workerd: each bad request gets its status, code and fields, and spends nothing. */
import { describe, expect, it } from "vitest";
import type { Bindings } from "../../src/env";
import type { ErrorBody } from "../../src/errors";
import { type Called, call, testEnv } from "../helpers/app";
import { anonCaller, expectNothingSpent, freshIp, usageOf, type Who } from "../helpers/gate";
import { parseEvents } from "../helpers/sse";
import { bearer } from "../helpers/tokens";

const STREAM = "/api/v1/stream";
const ANON_SESSION = "/api/v1/anon_session";
const KIB = 1024;
const MAX_TTL = 604_800;
const EMOJI = "\u{1F600}";

type Init = RequestInit & { duplex?: "half" };

/** A POST with a JSON body (a string is sent as it is, anything else is serialised). */
function postJson(body: unknown, headers: Record<string, string> = {}): Init {
  return {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  };
}

/** A GET of the stream with these query parameters (repeated keys allowed). */
function getQuery(params: [string, string][]): { path: string; init: Init } {
  return { path: `${STREAM}?${new URLSearchParams(params)}`, init: {} };
}

/** A body of `chunks` that never says its length (no Content-Length). */
function chunked(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = chunks[i++];
      if (next) controller.enqueue(next);
      else controller.close();
    },
  });
}

/** A valid JSON object of exactly `bytes` bytes (whitespace padding after a short message). */
function jsonOfSize(bytes: number): string {
  const head = '{"message":"hello"';
  return `${head}${" ".repeat(bytes - head.length - 1)}}`;
}

/** Splits `text` into 16 KiB chunks of UTF-8. */
function chunksOf(text: string): Uint8Array[] {
  const bytes = new TextEncoder().encode(text);
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += 16 * KIB) out.push(bytes.slice(at, at + 16 * KIB));
  return out;
}

/** Sends a stream request as `who`, with its token added to the headers. */
async function send(
  who: { token: string; ip: string },
  path: string,
  init: Init,
  env?: Bindings,
): Promise<Called> {
  const headers = new Headers(init.headers);
  for (const [k, v] of Object.entries(bearer(who.token))) headers.set(k, v);
  return call(path, { ...init, headers, ip: who.ip }, env);
}

/** Asserts an error response: status, code, and the exact `fields` when given. */
async function expectError(
  res: Response,
  status: number,
  code: ErrorBody["error_code"],
  fields?: string[],
): Promise<ErrorBody> {
  expect(res.status).toBe(status);
  expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
  const body = (await res.json()) as ErrorBody;
  expect(body.error_code).toBe(code);
  expect(typeof body.detail).toBe("string");
  if (fields) expect([...(body.fields ?? [])].sort()).toEqual([...fields].sort());
  return body;
}

/** Asserts a 200 event stream that ends with exactly one terminal frame, `done`; waits for its ledger write. */
async function expectStream({ res, settled }: Called): Promise<Record<string, unknown>> {
  expect(res.status).toBe(200);
  expect(res.headers.get("Content-Type")).toBe("text/event-stream; charset=utf-8");
  const all = parseEvents(await res.text());
  expect(all.filter((f) => f.event === "done" || f.event === "error")).toHaveLength(1);
  const last = all.at(-1);
  expect(last?.event).toBe("done");
  await settled();
  return last?.data ?? {};
}

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

describe("POST /api/v1/anon_session ttl_seconds", () => {
  // Minting requires the JSON content type even without a body (test/hardening/mint-guard.test.ts).
  const mint = async (init: Init, query = "") => {
    const headers = { "Content-Type": "application/json", ...(init.headers as object) };
    const { res, settled } = await call(`${ANON_SESSION}${query}`, {
      ...init,
      headers,
      ip: freshIp(),
    });
    await settled();
    return res;
  };
  const minted = async (res: Response) => {
    expect(res.status).toBe(200);
    return (await res.json()) as { token: string; expires_at: number; expires_in: number };
  };

  it("mints with the maximum lifetime when no ttl is given", async () => {
    const body = await minted(await mint({ method: "POST" }));
    expect(body.expires_in).toBe(MAX_TTL);
    expect(body.expires_at - Math.floor(Date.now() / 1000)).toBeGreaterThan(MAX_TTL - 5);
  });

  it("accepts the minimum of 60 seconds", async () => {
    expect((await minted(await mint(postJson({ ttl_seconds: 60 })))).expires_in).toBe(60);
  });

  it("accepts the maximum of 604800 seconds", async () => {
    expect((await minted(await mint(postJson({ ttl_seconds: MAX_TTL })))).expires_in).toBe(MAX_TTL);
  });

  it("accepts 60 and 604800 in the query", async () => {
    expect((await minted(await mint({ method: "POST" }, "?ttl_seconds=60"))).expires_in).toBe(60);
    expect(
      (await minted(await mint({ method: "POST" }, `?ttl_seconds=${MAX_TTL}`))).expires_in,
    ).toBe(MAX_TTL);
  });

  it("mints a token whose lifetime is the requested one", async () => {
    const { token } = await minted(await mint(postJson({ ttl_seconds: 120 })));
    const payload = JSON.parse(
      atob((token.split(".")[1] ?? "").replace(/-/g, "+").replace(/_/g, "/")),
    ) as {
      iat: number;
      exp: number;
    };
    expect(payload.exp - payload.iat).toBe(120);
  });

  const BAD_TTL: [string, () => Promise<Response>][] = [
    ["rejects 59 seconds", () => mint(postJson({ ttl_seconds: 59 }))],
    ["rejects 604801 seconds", () => mint(postJson({ ttl_seconds: MAX_TTL + 1 }))],
    ["rejects 0 seconds", () => mint(postJson({ ttl_seconds: 0 }))],
    ["rejects a negative ttl", () => mint(postJson({ ttl_seconds: -60 }))],
    ["rejects a fractional ttl", () => mint(postJson({ ttl_seconds: 60.5 }))],
    ["rejects a ttl that is not a number", () => mint(postJson({ ttl_seconds: "abc" }))],
    ["rejects a ttl sent as a string in JSON", () => mint(postJson({ ttl_seconds: "120" }))],
    ["rejects a ttl sent as a boolean", () => mint(postJson({ ttl_seconds: true }))],
    ["rejects a ttl sent as an array", () => mint(postJson({ ttl_seconds: [120] }))],
    ["rejects a null ttl", () => mint(postJson({ ttl_seconds: null }))],
    ["rejects ttl_seconds=59 in the query", () => mint({ method: "POST" }, "?ttl_seconds=59")],
    [
      "rejects ttl_seconds=604801 in the query",
      () => mint({ method: "POST" }, `?ttl_seconds=${MAX_TTL + 1}`),
    ],
    ["rejects ttl_seconds=abc in the query", () => mint({ method: "POST" }, "?ttl_seconds=abc")],
    ["rejects an empty ttl_seconds in the query", () => mint({ method: "POST" }, "?ttl_seconds=")],
    [
      "rejects a hexadecimal ttl_seconds in the query",
      () => mint({ method: "POST" }, "?ttl_seconds=0x78"),
    ],
    [
      "rejects an exponent ttl_seconds in the query",
      () => mint({ method: "POST" }, "?ttl_seconds=1e3"),
    ],
    [
      "rejects a repeated ttl_seconds in the query",
      () => mint({ method: "POST" }, "?ttl_seconds=60&ttl_seconds=120"),
    ],
    [
      "rejects a bad ttl in the body even when the query is good",
      () => mint(postJson({ ttl_seconds: 59 }), "?ttl_seconds=60"),
    ],
  ];
  for (const [name, request] of BAD_TTL) {
    it(name, async () => {
      await expectError(await request(), 422, "invalid_input", ["ttl_seconds"]);
    });
  }

  it("rejects an unknown field and names it", async () => {
    await expectError(
      await mint(postJson({ ttl_seconds: 60, scope: "admin" })),
      422,
      "invalid_input",
      ["scope"],
    );
  });

  it("rejects a JSON body that is not an object", async () => {
    await expectError(await mint(postJson([60])), 422, "invalid_input", ["body"]);
  });

  it("rejects malformed JSON", async () => {
    await expectError(await mint(postJson("{ttl_seconds: 60}")), 422, "invalid_input", ["body"]);
  });

  it("answers 415 for a body that is not JSON", async () => {
    const res = await mint({
      method: "POST",
      headers: { "Content-Type": "text/plain" },
      body: "ttl_seconds=60",
    });
    await expectError(res, 415, "unsupported_media_type");
  });

  it("answers 413 for a body over 64 KiB", async () => {
    const body = `{"ttl_seconds":60${" ".repeat(64 * KIB)}}`;
    await expectError(
      await mint(postJson(body, { "Content-Length": String(body.length) })),
      413,
      "payload_too_large",
    );
  });

  it("does not count a refused request against the per-IP minting limit", async () => {
    const ip = freshIp();
    const env = testEnv({ ANON_SESSIONS_PER_IP_HOURLY: "1" });
    const bad = await call(ANON_SESSION, { ...postJson({ ttl_seconds: 59 }), ip }, env);
    await bad.settled();
    await expectError(bad.res, 422, "invalid_input", ["ttl_seconds"]);
    const good = await call(ANON_SESSION, { ...postJson(""), ip }, env);
    await good.settled();
    expect(good.res.status).toBe(200);
    const third = await call(ANON_SESSION, { ...postJson(""), ip }, env);
    await third.settled();
    await expectError(third.res, 429, "too_many_sessions");
  });
});
