/** @module What the input tests share: requests of a given shape and size, and the expected refusal or stream. */
import { expect } from "vitest";
import type { Bindings } from "../../src/env";
import type { ErrorBody } from "../../src/errors";
import { type Called, call } from "./app";
import { parseEvents } from "./sse";
import { bearer } from "./tokens";

export const STREAM = "/api/v1/stream";
export const ANON_SESSION = "/api/v1/anon_session";
export const KIB = 1024;
export const MAX_TTL = 604_800;
export const EMOJI = "\u{1F600}";

export type Init = RequestInit & { duplex?: "half" };

/** A POST with a JSON body (a string is sent as it is, anything else is serialised). */
export function postJson(body: unknown, headers: Record<string, string> = {}): Init {
  return {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  };
}

/** A GET of the stream with these query parameters (repeated keys allowed). */
export function getQuery(params: [string, string][]): { path: string; init: Init } {
  return { path: `${STREAM}?${new URLSearchParams(params)}`, init: {} };
}

/** A body of `chunks` that never says its length (no Content-Length). */
export function chunked(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
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
export function jsonOfSize(bytes: number): string {
  const head = '{"message":"hello"';
  return `${head}${" ".repeat(bytes - head.length - 1)}}`;
}

/** Splits `text` into 16 KiB chunks of UTF-8. */
export function chunksOf(text: string): Uint8Array[] {
  const bytes = new TextEncoder().encode(text);
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += 16 * KIB) out.push(bytes.slice(at, at + 16 * KIB));
  return out;
}

/** Sends a stream request as `who`, with its token added to the headers. */
export async function send(
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
export async function expectError(
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
export async function expectStream({ res, settled }: Called): Promise<Record<string, unknown>> {
  expect(res.status).toBe(200);
  expect(res.headers.get("Content-Type")).toBe("text/event-stream; charset=utf-8");
  const all = parseEvents(await res.text());
  expect(all.filter((f) => f.event === "done" || f.event === "error")).toHaveLength(1);
  const last = all.at(-1);
  expect(last?.event).toBe("done");
  await settled();
  return last?.data ?? {};
}
