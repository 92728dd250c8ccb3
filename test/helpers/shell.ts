/** @module What the app shell's tests share: a request read to its end, the error body's shape, the Allow header and the request-id pattern. */
import { expect } from "vitest";
import type { Bindings } from "../../src/env";
import type { ErrorBody } from "../../src/errors";
import { type Called, call, testEnv } from "./app";
import { freshIp } from "./gate";

/** The request-id shape the app accepts from a client. */
export const REQUEST_ID = /^[A-Za-z0-9_.:=-]{8,128}$/;

/** Calls the app and waits for its after-response work; the body is read first. */
export async function request(
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
export function expectError(
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
export function allowOf(res: Response): string[] {
  return (res.headers.get("Allow") ?? "")
    .split(",")
    .map((m) => m.trim())
    .filter(Boolean);
}
