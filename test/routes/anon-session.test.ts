/** @module POST /api/v1/anon_session: the token's lifetime (ttl_seconds) and the bodies the endpoint refuses. */
import { describe, expect, it } from "vitest";
import { call, testEnv } from "../helpers/app";
import { freshIp } from "../helpers/gate";
import { ANON_SESSION, expectError, type Init, KIB, MAX_TTL, postJson } from "../helpers/input";

describe("POST /api/v1/anon_session ttl_seconds", () => {
  // Minting requires the JSON content type even without a body (test/auth/anon-session-origin.test.ts).
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
