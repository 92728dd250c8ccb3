/** @module How a refused token is answered (JSON or one SSE frame, in the client's words) and how long an Authorization header may be. */
import { describe, expect, inject, it } from "vitest";
import { testEnv } from "../helpers/app";
import { expectUnauthorized, now, paddedAuthorization, send } from "../helpers/auth";
import { parseEvents } from "../helpers/sse";
import { SECRET_KEY, supabaseAsymmetric, supabaseClaims, supabaseHs256 } from "../helpers/tokens";

describe("failure responses", () => {
  it("tells the client that an expired token has expired, in its own words", async () => {
    const token = await supabaseHs256(supabaseClaims({ iat: now() - 7200, exp: now() - 60 }));
    const body = await expectUnauthorized(
      await send("GET /api/v1/usage", `Bearer ${token}`),
      "invalid",
      token,
    );
    expect(body.detail).toMatch(/expired/);
  });

  it("answers a missing token with one SSE error frame when the client accepts text/event-stream", async () => {
    const res = await send("GET /api/v1/stream", undefined, testEnv(), {
      Accept: "text/event-stream",
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("Content-Type")).toMatch(/^text\/event-stream/);
    expect(res.headers.get("WWW-Authenticate")).toMatch(/^Bearer realm="[^"]+"$/);
    const all = parseEvents(await res.text());
    expect(all).toHaveLength(1);
    expect(all[0]?.event).toBe("error");
    expect(all[0]?.data.error_code).toBe("unauthorized");
  });

  it("answers an invalid token with one SSE error frame on POST too", async () => {
    const token = await supabaseHs256(supabaseClaims(), SECRET_KEY);
    const res = await send("POST /api/v1/stream", `Bearer ${token}`, testEnv(), {
      Accept: "application/json;q=0.5, text/event-stream",
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("WWW-Authenticate")).toBe('Bearer error="invalid_token"');
    const text = await res.text();
    expect(text).not.toContain(token);
    const all = parseEvents(text);
    expect(all).toHaveLength(1);
    expect(all[0]?.event).toBe("error");
    expect(all[0]?.data.error_code).toBe("unauthorized");
  });

  it("answers 401, not 500, when the key set cannot be fetched", async () => {
    const env = testEnv({ SUPABASE_JWKS_URL: `${inject("supabaseUrl")}/no-such-key-set.json` });
    const token = await supabaseAsymmetric("ES256");
    await expectUnauthorized(
      await send("GET /api/v1/usage", `Bearer ${token}`, env),
      "invalid",
      token,
    );
  });
});

describe("Authorization header size", () => {
  it("accepts a valid token whose header is just under 8 KiB", async () => {
    const header = await paddedAuthorization(8 * 1024);
    expect(header.length).toBeGreaterThan(8 * 1024 - 64);
    const res = await send("GET /api/v1/usage", header);
    expect(res.status).toBe(200);
  });

  it("rejects a header of 8 KiB plus one byte before any verification", async () => {
    const header = await paddedAuthorization(8 * 1024);
    // One space more between scheme and token: the token itself is untouched and valid.
    const over = `Bearer ${" ".repeat(8 * 1024 + 1 - header.length)}${header.slice("Bearer ".length)}`;
    expect(over.length).toBe(8 * 1024 + 1);
    await expectUnauthorized(await send("GET /api/v1/usage", over), "invalid", header.slice(7));
  });

  it("rejects a 64 KiB header with 401, not 500", async () => {
    const res = await send("GET /api/v1/usage", `Bearer ${"a".repeat(64 * 1024)}.b.c`);
    await expectUnauthorized(res, "invalid");
  });
});
