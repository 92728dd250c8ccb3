/** @module Each request's id (X-Request-Id, taken from a client or made) and the mapping of an internal error to a response that leaks nothing. */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { describe, expect, it } from "vitest";
import type { AppEnv } from "../../src/env";
import { AppError, type ErrorBody } from "../../src/errors";
import { handleError } from "../../src/observe/error-response";
import { testEnv } from "../helpers/app";
import { REQUEST_ID, request } from "../helpers/shell";
import { anonToken, bearer } from "../helpers/tokens";

describe("X-Request-Id", () => {
  const everywhere: [string, number, () => Promise<{ res: Response; text: string }>][] = [
    ["a health check", 200, () => request("/healthz")],
    ["a 404", 404, () => request("/api/v1/nope")],
    ["a 405", 405, () => request("/api/v1/anon_session")],
    ["a 401", 401, () => request("/api/v1/usage")],
    [
      "a 422",
      422,
      async () =>
        request("/api/v1/stream", {
          method: "POST",
          headers: { ...bearer(await anonToken()), "Content-Type": "application/json" },
          body: "[]",
        }),
    ],
    [
      "a 200 from /api/v1/usage",
      200,
      async () => request("/api/v1/usage", { headers: bearer(await anonToken()) }),
    ],
    [
      "a 200 event stream",
      200,
      async () => request("/api/v1/stream?message=hi", { headers: bearer(await anonToken()) }),
    ],
    [
      "a minted session",
      200,
      () =>
        request("/api/v1/anon_session", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
        }),
    ],
    ["the redirect from /", 302, () => request("/", { redirect: "manual" })],
    ["the chat page", 200, () => request("/magic/")],
    [
      "a misconfigured server's answer",
      500,
      () => request("/api/v1/usage", {}, testEnv({ RATE_LIMIT_USER: "lots" })),
    ],
  ];
  for (const [name, status, send] of everywhere) {
    it(`is on ${name}`, async () => {
      const { res } = await send();
      expect(res.status).toBe(status);
      expect(res.headers.get("X-Request-Id")).toMatch(REQUEST_ID);
    });
  }

  it("differs from one request to the next", async () => {
    const a = (await request("/healthz")).res.headers.get("X-Request-Id");
    const b = (await request("/healthz")).res.headers.get("X-Request-Id");
    expect(a).not.toBe(b);
  });

  for (const incoming of ["req-12345678", "trace:abc.DEF_123=x", "a".repeat(128)]) {
    it(`echoes a well-formed incoming id (${incoming.length} characters)`, async () => {
      const { res } = await request("/healthz", { headers: { "X-Request-Id": incoming } });
      expect(res.headers.get("X-Request-Id")).toBe(incoming);
    });
  }

  it("echoes a well-formed incoming id on an error too", async () => {
    const { res } = await request("/api/v1/usage", { headers: { "X-Request-Id": "req-err-0001" } });
    expect(res.status).toBe(401);
    expect(res.headers.get("X-Request-Id")).toBe("req-err-0001");
  });

  const malformed: [string, string][] = [
    ["containing spaces", "has spaces in it"],
    ["of 300 characters", "a".repeat(300)],
    ["of 129 characters", "a".repeat(129)],
    ["shorter than 8 characters", "abc"],
    ["containing a quote and angle brackets", 'x"><script>1234'],
    ["containing a slash", "abc/defghij"],
  ];
  for (const [name, incoming] of malformed) {
    it(`replaces an incoming id ${name}`, async () => {
      const { res } = await request("/healthz", { headers: { "X-Request-Id": incoming } });
      const id = res.headers.get("X-Request-Id");
      expect(id).toMatch(REQUEST_ID);
      expect(id).not.toBe(incoming);
      // A generated UUID is hex: it can contain "abc" by chance, so look for a longer piece only.
      if (incoming.length >= 8) expect(id).not.toContain(incoming.slice(0, 8));
    });
  }
});

describe("an internal error", () => {
  const SECRET = "secret sk-live-123 at db.internal:5432";

  /** A small app with the real error handler, whose routes fail in chosen ways. */
  function failing(): Hono<AppEnv> {
    const app = new Hono<AppEnv>();
    app.get("/throw", () => {
      throw new Error(SECRET, { cause: new Error(`cause: ${SECRET}`) });
    });
    app.get("/type-error", () => {
      throw new TypeError(`Cannot read properties of undefined (reading '${SECRET}')`);
    });
    app.get("/direct", (c) => handleError(new Error(SECRET), c));
    app.get("/app-error", () => {
      throw new AppError("upstream_busy", "the model is busy", {
        retryAfter: 3,
        cause: new Error(SECRET),
      });
    });
    app.get("/http-413", () => {
      throw new HTTPException(413, { message: SECRET });
    });
    app.get("/http-400", () => {
      throw new HTTPException(400, { message: SECRET });
    });
    app.get("/http-403", () => {
      throw new HTTPException(403, { message: SECRET });
    });
    app.onError(handleError);
    return app;
  }

  for (const path of ["/throw", "/type-error", "/direct", "/http-403"]) {
    it(`answers a generic 500 internal_error without its message (${path})`, async () => {
      const res = await failing().request(path);
      const text = await res.text();
      expect(res.status).toBe(500);
      const body = JSON.parse(text) as ErrorBody;
      expect(body.error_code).toBe("internal_error");
      expect(body.retry_after).toBeNull();
      expect(text).not.toMatch(
        /secret|sk-live|db\.internal|stack|at \w+ \(|TypeError|Cannot read/i,
      );
    });
  }

  it("answers a generic internal_error as one SSE frame to an event-stream client", async () => {
    const res = await failing().request("/throw", { headers: { Accept: "text/event-stream" } });
    const text = await res.text();
    expect(res.status).toBe(500);
    expect(res.headers.get("Content-Type")).toMatch(/^text\/event-stream/);
    expect(text).toMatch(/^id: 1\nevent: error\ndata: \{.*"error_code":"internal_error".*\}\n\n$/);
    expect(text).not.toMatch(/secret|sk-live/);
  });

  it("keeps an AppError's own code, detail and Retry-After, but not its cause", async () => {
    const res = await failing().request("/app-error");
    const text = await res.text();
    expect(res.status).toBe(503);
    expect(res.headers.get("Retry-After")).toBe("3");
    const body = JSON.parse(text) as ErrorBody;
    expect(body).toEqual({
      error_code: "upstream_busy",
      detail: "the model is busy",
      retry_after: 3,
    });
    expect(text).not.toMatch(/secret/);
  });

  it("maps Hono's 413 to payload_too_large without its message", async () => {
    const res = await failing().request("/http-413");
    const text = await res.text();
    expect(res.status).toBe(413);
    expect((JSON.parse(text) as ErrorBody).error_code).toBe("payload_too_large");
    expect(text).not.toMatch(/secret/);
  });

  it("maps Hono's 400 to invalid_input without its message", async () => {
    const res = await failing().request("/http-400");
    const text = await res.text();
    expect(res.status).toBe(422);
    expect((JSON.parse(text) as ErrorBody).error_code).toBe("invalid_input");
    expect(text).not.toMatch(/secret/);
  });
});
