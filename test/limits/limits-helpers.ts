/** @module What the limit stores' contract tests share: one stream request, and its error code. */
import type { Bindings } from "../../src/env";
import { call } from "../helpers/app";
import { bearer } from "../helpers/tokens";

/** Sends one stream request; the fake upstream answers one token under directive `id`. */
export async function stream(env: Bindings, token: string, ip: string, directive = "tokens=1") {
  const id = crypto.randomUUID();
  const message = encodeURIComponent(`hi [[fake id=${id} ${directive}]]`);
  const called = await call(
    `/api/v1/stream?message=${message}`,
    { headers: bearer(token), ip },
    env,
  );
  const body = await called.res.text();
  await called.settled();
  return { res: called.res, body, id };
}

/** The `error_code` of a JSON error body. */
export const errorCode = (body: string) => (JSON.parse(body) as { error_code: string }).error_code;
