/** @module The app's routes: health, 404 for unknown paths, 405 with Allow for a wrong method, and the page. */
import { describe, expect, it } from "vitest";
import { allowOf, expectError, request } from "../helpers/shell";
import { bearer, supabaseHs256 } from "../helpers/tokens";

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
