/** @module The app shell: health, 404/405, request ids, the page redirect, internal errors and bad config. */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { describe, expect, it } from "vitest";
import type { AppEnv, Bindings } from "../src/env";
import { AppError, type ErrorBody } from "../src/errors";
import { handleError } from "../src/observe/error-response";
import { type Called, call, testEnv } from "./helpers/app";
import { anonToken, bearer, supabaseHs256 } from "./helpers/tokens";

/** The request-id shape the app accepts from a client. */
const REQUEST_ID = /^[A-Za-z0-9_.:=-]{8,128}$/;

/** A random client address, so per-IP windows never meet another test's. */
function freshIp(): string {
  const octet = () => Math.floor(Math.random() * 254) + 1;
  return `10.${octet()}.${octet()}.${octet()}`;
}

/** Calls the app and waits for its after-response work; the body is read first. */
async function request(
  path: string,
  init: RequestInit = {},
  env: Bindings = testEnv(),
): Promise<{ res: Response; text: string }> {
  const called: Called = await call(path, { ...init, ip: freshIp() }, env);
  const text = await called.res.text();
  await called.settled();
  return { res: called.res, text };
}

/** Asserts a JSON error with this status and code. */
function expectError(
  { res, text }: { res: Response; text: string },
  status: number,
  code: ErrorBody["error_code"],
): ErrorBody {
  expect(res.status).toBe(status);
  expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
  const body = JSON.parse(text) as ErrorBody;
  expect(body.error_code).toBe(code);
  expect(typeof body.detail).toBe("string");
  return body;
}

/** The methods of an `Allow` header. */
function allowOf(res: Response): string[] {
  return (res.headers.get("Allow") ?? "")
    .split(",")
    .map((m) => m.trim())
    .filter(Boolean);
}

describe("GET /healthz", () => {
  it('answers 200 {"status":"ok"}', async () => {
    const { res, text } = await request("/healthz");
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
    expect(JSON.parse(text)).toEqual({ status: "ok" });
  });

  it("answers HEAD like GET, without a body", async () => {
    const { res, text } = await request("/healthz", { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(text).toBe("");
  });

  it("answers POST with 405 and Allow: GET", async () => {
    const result = await request("/healthz", { method: "POST" });
    expectError(result, 405, "method_not_allowed");
    expect(allowOf(result.res)).toContain("GET");
    expect(allowOf(result.res)).not.toContain("POST");
  });
});

describe("unknown API paths", () => {
  for (const path of [
    "/api/v1/nope",
    "/api/v2/stream",
    "/api/v1/streams",
    "/api/v1/stream/extra",
    "/api",
  ]) {
    it(`answers ${path} with a 404 not_found JSON body`, async () => {
      const body = expectError(await request(path), 404, "not_found");
      expect(body.retry_after).toBeNull();
    });
  }

  it("answers an unknown API path with 404 whatever the method", async () => {
    expectError(await request("/api/v1/nope", { method: "DELETE" }), 404, "not_found");
  });

  it("answers an unknown API path as one SSE error frame to an event-stream client", async () => {
    const { res, text } = await request("/api/v1/nope", {
      headers: { Accept: "text/event-stream" },
    });
    expect(res.status).toBe(404);
    expect(res.headers.get("Content-Type")).toMatch(/^text\/event-stream/);
    expect(text).toMatch(/^id: 1\nevent: error\ndata: \{.*"error_code":"not_found".*\}\n\n$/);
  });
});

describe("a known path with the wrong method", () => {
  const cases: { method: string; path: string; allow: string[]; auth?: boolean }[] = [
    // Without a token too: the method is checked before authentication.
    { method: "PUT", path: "/api/v1/stream", allow: ["GET", "POST"] },
    { method: "DELETE", path: "/api/v1/stream", allow: ["GET", "POST"] },
    { method: "PATCH", path: "/api/v1/stream", allow: ["GET", "POST"], auth: true },
    { method: "GET", path: "/api/v1/anon_session", allow: ["POST"] },
    { method: "PUT", path: "/api/v1/anon_session", allow: ["POST"] },
    { method: "DELETE", path: "/api/v1/usage", allow: ["GET"] },
    { method: "POST", path: "/api/v1/usage", allow: ["GET"] },
    { method: "PATCH", path: "/api/v1/usage", allow: ["GET"] },
  ];
  for (const c of cases) {
    it(`answers ${c.method} ${c.path} with 405 and Allow naming ${c.allow.join(" and ")}`, async () => {
      const headers = c.auth ? bearer(await supabaseHs256()) : {};
      const result = await request(c.path, { method: c.method, headers });
      expectError(result, 405, "method_not_allowed");
      const allow = allowOf(result.res);
      for (const m of c.allow) expect(allow).toContain(m);
      expect(allow).not.toContain(c.method);
    });
  }

  for (const [method, path] of [
    ["GET", "/api/v1/usage/"],
    ["POST", "/api/v1/anon_session/"],
    ["GET", "/api/v1/stream/"],
  ]) {
    it(`answers ${method} ${path} (trailing slash) with 404, not a contradictory 405`, async () => {
      const result = await request(path as string, { method });
      expectError(result, 404, "not_found");
    });
  }

  it("answers OPTIONS /api/v1/usage with 204 and the Allow header", async () => {
    const { res } = await request("/api/v1/usage", { method: "OPTIONS" });
    expect(res.status).toBe(204);
    expect(allowOf(res)).toEqual(expect.arrayContaining(["GET", "OPTIONS"]));
  });
});

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

describe("the page", () => {
  it("redirects GET / to /magic/", async () => {
    const { res } = await request("/", { redirect: "manual" });
    expect([301, 302, 303, 307, 308]).toContain(res.status);
    expect(new URL(res.headers.get("Location") ?? "", "http://gateway.test").pathname).toBe(
      "/magic/",
    );
  });

  it("serves /magic/ as HTML", async () => {
    const { res, text } = await request("/magic/");
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/^text\/html/);
    expect(text).toMatch(/<html/i);
  });
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

describe("an invalid configuration", () => {
  const BAD: [string, Partial<Record<keyof Bindings, string | undefined>>, string][] = [
    ["RATE_LIMIT_USER is not a rate limit", { RATE_LIMIT_USER: "lots" }, "lots"],
    ["RATE_LIMIT_IP has no window", { RATE_LIMIT_IP: "60-per-minute" }, "60-per-minute"],
    ["COST_CAP_MAX_USD is not a number", { COST_CAP_MAX_USD: "cheap-as-chips" }, "cheap-as-chips"],
    ["ANON_QUOTA_TOTAL is negative", { ANON_QUOTA_TOTAL: "-100" }, "-100"],
    ["SUPABASE_URL is not a URL", { SUPABASE_URL: "not a url: hunter2" }, "hunter2"],
    [
      "UPSTASH_REDIS_REST_URL is set without its token",
      {
        UPSTASH_REDIS_REST_URL: "https://secret-host.example",
        UPSTASH_REDIS_REST_TOKEN: undefined,
      },
      "secret-host",
    ],
    [
      "production talks to the upstream over plain http",
      { ENVIRONMENT: "production", OPENAI_BASE_URL: "http://plain.example/v1" },
      "plain.example",
    ],
  ];

  for (const [name, overrides, value] of BAD) {
    describe(`when ${name}`, () => {
      const env = testEnv(overrides);
      const apiCalls: [string, () => Promise<RequestInit>][] = [
        ["GET /api/v1/usage", async () => ({ headers: bearer(await anonToken()) })],
        ["GET /api/v1/stream", async () => ({ headers: bearer(await anonToken()) })],
        [
          "POST /api/v1/stream",
          async () => ({
            method: "POST",
            headers: { ...bearer(await anonToken()), "Content-Type": "application/json" },
            body: JSON.stringify({ message: "hi" }),
          }),
        ],
        [
          "POST /api/v1/anon_session",
          async () => ({ method: "POST", headers: { "Content-Type": "application/json" } }),
        ],
        ["GET /api/v1/nope", async () => ({})],
      ];
      for (const [route, init] of apiCalls) {
        it(`answers ${route} with 500 misconfigured, naming no value`, async () => {
          const [method, path] = route.split(" ") as [string, string];
          const query = path === "/api/v1/stream" && method === "GET" ? "?message=hi" : "";
          const result = await request(`${path}${query}`, { method, ...(await init()) }, env);
          const body = expectError(result, 500, "misconfigured");
          expect(result.text).not.toContain(value);
          expect(body.detail).not.toMatch(/[A-Z]{3,}_[A-Z_]+/);
        });
      }

      it("still answers GET /healthz with 200", async () => {
        const { res, text } = await request("/healthz", {}, env);
        expect(res.status).toBe(200);
        expect(JSON.parse(text)).toEqual({ status: "ok" });
      });
    });
  }

  it("answers misconfigured as one SSE error frame to an event-stream client", async () => {
    const { res, text } = await request(
      "/api/v1/stream?message=hi",
      { headers: { ...bearer(await anonToken()), Accept: "text/event-stream" } },
      testEnv({ RATE_LIMIT_USER: "lots" }),
    );
    expect(res.status).toBe(500);
    expect(res.headers.get("Content-Type")).toMatch(/^text\/event-stream/);
    expect(text).toMatch(/^id: 1\nevent: error\ndata: \{.*"error_code":"misconfigured".*\}\n\n$/);
    expect(text).not.toContain("lots");
  });

  it("recovers once the variable is fixed (a new env is parsed afresh)", async () => {
    expectError(
      await request(
        "/api/v1/anon_session",
        { method: "POST", headers: { "Content-Type": "application/json" } },
        testEnv({ RATE_LIMIT_USER: "lots" }),
      ),
      500,
      "misconfigured",
    );
    const { res } = await request(
      "/api/v1/anon_session",
      { method: "POST", headers: { "Content-Type": "application/json" } },
      testEnv({ RATE_LIMIT_USER: "30/30s" }),
    );
    expect(res.status).toBe(200);
  });
});
