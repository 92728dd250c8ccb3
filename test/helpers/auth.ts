/** @module What the authentication tests share: the endpoints a token reaches, and the shape of a 401 that leaks nothing. */
import { expect } from "vitest";
import type { Bindings } from "../../src/env";
import type { ErrorBody } from "../../src/errors";
import { type Called, call, testEnv } from "./app";
import { freshIp } from "./gate";
import { parseEvents } from "./sse";
import { anonClaims, anonShaped, b64url, bearer, supabaseClaims, supabaseHs256 } from "./tokens";

export const USAGE = "/api/v1/usage";
export const STREAM = "/api/v1/stream";
export const now = () => Math.floor(Date.now() / 1000);

/** Words of jose's (and of our own thrown) messages that a client must never read. */
export const LEAKS =
  /JWS|JWK|JWT|JWE|claim|signature|Header Parameter|ERR_|timestamp|Compact|applicable key|Expected 200|bad sub|lifetime|algorithm not allowed|not a user token|not configured|HMAC|CryptoKey/;

export type Target = "GET /api/v1/usage" | "POST /api/v1/stream" | "GET /api/v1/stream";
export const TARGETS: Target[] = ["GET /api/v1/usage", "POST /api/v1/stream", "GET /api/v1/stream"];

/** Sends `authorization` (none when undefined) to one of the authenticated endpoints. */
export async function send(
  target: Target,
  authorization: string | undefined,
  env: Bindings = testEnv(),
  extraHeaders: Record<string, string> = {},
): Promise<Response> {
  const headers: Record<string, string> = { ...extraHeaders };
  if (authorization !== undefined) headers.Authorization = authorization;
  const ip = freshIp();
  let called: Called;
  if (target === "GET /api/v1/usage") called = await call(USAGE, { headers, ip }, env);
  else if (target === "GET /api/v1/stream") {
    called = await call(`${STREAM}?message=hello`, { headers, ip }, env);
  } else {
    headers["Content-Type"] = "application/json";
    const body = JSON.stringify({ message: "hello" });
    called = await call(STREAM, { method: "POST", headers, body, ip }, env);
  }
  // Every use of send() expects a refusal or a JSON answer: no stream holds `settled` back.
  await called.settled();
  return called.res;
}

/** Asserts the contract's 401: status, code, WWW-Authenticate, and nothing leaked. */
export async function expectUnauthorized(
  res: Response,
  kind: "missing" | "invalid",
  token?: string,
): Promise<ErrorBody> {
  const text = await res.text();
  expect(res.status).toBe(401);
  expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
  const body = JSON.parse(text) as ErrorBody;
  expect(body.error_code).toBe("unauthorized");
  expect(body.retry_after).toBeNull();
  expect(typeof body.detail).toBe("string");
  const www = res.headers.get("WWW-Authenticate");
  if (kind === "missing") expect(www).toMatch(/^Bearer realm="[^"]+"$/);
  else expect(www).toBe('Bearer error="invalid_token"');
  expect(text).not.toMatch(LEAKS);
  if (token) {
    expect(text).not.toContain(token);
    for (const segment of token.split(".")) {
      if (segment.length >= 8) expect(text).not.toContain(segment);
    }
  }
  return body;
}

/** POST /api/v1/stream with `token`; asserts a 200 event stream that ends with `done`. */
export async function expectStreams(token: string): Promise<void> {
  const { res, settled } = await call(STREAM, {
    method: "POST",
    headers: { ...bearer(token), "Content-Type": "application/json" },
    body: JSON.stringify({ message: "hello" }),
    ip: freshIp(),
  });
  expect(res.status).toBe(200);
  expect(res.headers.get("Content-Type")).toMatch(/^text\/event-stream/);
  const all = parseEvents(await res.text());
  await settled();
  expect(all.at(-1)?.event).toBe("done");
}

/** Swaps the payload segment of `token`, keeping its header and signature. */
export function withPayload(token: string, payload: unknown): string {
  const [header, , signature] = token.split(".");
  return `${header}.${b64url(payload)}.${signature}`;
}

/** A Supabase HS256 token whose claims lack `name`. */
export function supabaseWithout(name: "sub" | "exp" | "iat" | "role"): Promise<string> {
  const claims = supabaseClaims();
  delete claims[name];
  return supabaseHs256(claims);
}

/** One of our anonymous tokens whose claims lack `name`. */
export function anonWithout(name: "sub" | "exp" | "iat"): Promise<string> {
  const claims = anonClaims();
  delete claims[name];
  return anonShaped(claims);
}

/** A valid Supabase HS256 token padded with an extra claim to exactly `length` header bytes, or just under. */
export async function paddedAuthorization(length: number): Promise<string> {
  let pad = Math.floor(((length - 200) * 3) / 4);
  for (;;) {
    const header = `Bearer ${await supabaseHs256(supabaseClaims({ pad: "x".repeat(pad) }))}`;
    if (header.length <= length) return header;
    pad -= Math.max(1, Math.floor(((header.length - length) * 3) / 4));
  }
}
