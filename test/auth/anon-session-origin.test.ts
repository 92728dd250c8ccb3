/**
 * @module Minting from another site: a bodyless or non-JSON POST (what `fetch(..., {mode:
 * "no-cors"})` can send without a preflight) is a 415, a cross-site one a 403, and neither
 * spends a mint of the address's hourly allowance.
 */
import { describe, expect, it } from "vitest";
import type { ErrorBody } from "../../src/errors";
import { call, testEnv } from "../helpers/app";
import { randomIp } from "../helpers/stores";

const MINT = "/api/v1/anon_session";

async function mint(init: RequestInit, ip: string, env = testEnv()) {
  const { res, settled } = await call(MINT, { method: "POST", ...init, ip }, env);
  await settled();
  return res;
}

async function expectError(res: Response, status: number, code: string): Promise<void> {
  expect(res.status).toBe(status);
  expect(((await res.json()) as ErrorBody).error_code).toBe(code);
}

describe("POST /api/v1/anon_session from a browser page", () => {
  const simpleRequests: [string, RequestInit][] = [
    ["no body and no Content-Type", {}],
    ["text/plain", { headers: { "Content-Type": "text/plain" }, body: "{}" }],
    [
      "a form",
      { headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: "ttl_seconds=60" },
    ],
    ["multipart/form-data", { body: new FormData() }],
  ];
  for (const [what, init] of simpleRequests) {
    it(`answers 415 to ${what}, and spends none of the address's mints`, async () => {
      // One address's hourly allowance is 10: twelve refusals, then ten mints still pass.
      const env = testEnv({ ANON_SESSIONS_PER_IP_HOURLY: "10" });
      const ip = randomIp();
      for (let i = 0; i < 12; i++)
        await expectError(await mint(init, ip, env), 415, "unsupported_media_type");
      const json = { headers: { "Content-Type": "application/json" } };
      for (let i = 0; i < 10; i++) expect((await mint(json, ip, env)).status).toBe(200);
    });
  }

  it("mints with Content-Type: application/json and no body", async () => {
    const res = await mint({ headers: { "Content-Type": "application/json" } }, randomIp());
    expect(res.status).toBe(200);
    expect(typeof ((await res.json()) as { token: string }).token).toBe("string");
  });

  it("answers 403 forbidden to Sec-Fetch-Site: cross-site, even with a JSON body", async () => {
    const env = testEnv({ ANON_SESSIONS_PER_IP_HOURLY: "10" });
    const ip = randomIp();
    const crossSite = {
      headers: { "Content-Type": "application/json", "Sec-Fetch-Site": "cross-site" },
      body: "{}",
    };
    for (let i = 0; i < 12; i++)
      await expectError(await mint(crossSite, ip, env), 403, "forbidden");
    const json = { headers: { "Content-Type": "application/json" } };
    for (let i = 0; i < 10; i++) expect((await mint(json, ip, env)).status).toBe(200);
  });

  for (const site of ["same-origin", "same-site", "none"]) {
    it(`mints for Sec-Fetch-Site: ${site}`, async () => {
      const headers = { "Content-Type": "application/json", "Sec-Fetch-Site": site };
      expect((await mint({ headers, body: "{}" }, randomIp())).status).toBe(200);
    });
  }
});
