/**
 * @module A fault drill in workerd (one of the critical ones of `npm run drills`): the JWKS server
 * unreachable when a fresh env verifies its first token.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { call, json, testEnv } from "../helpers/app";
import { streamPath } from "../helpers/gate";
import { readEvents } from "../helpers/sse";
import { randomIp } from "../helpers/stores";
import {
  anonToken,
  bearer,
  supabaseAsymmetric,
  supabaseClaims,
  supabaseHs256,
} from "../helpers/tokens";

/** The addresses the isolate's fetch() was asked for from now on, and the init each came with. */
function watchFetches(): { url: string; init: RequestInit | undefined }[] {
  const seen: { url: string; init: RequestInit | undefined }[] = [];
  const real = globalThis.fetch;
  vi.spyOn(globalThis, "fetch").mockImplementation((input, init) => {
    seen.push({ url: input instanceof Request ? input.url : String(input), init });
    return real(input, init);
  });
  return seen;
}

describe("JWKS server down on a cold start", () => {
  afterEach(() => {
    vi.restoreAllMocks();
    vi.useRealTimers();
  });

  it("keeps HS256 Supabase and anonymous tokens streaming and answers ES256/RS256 with 401", async () => {
    // A fresh env (a config parsed for the first time) whose key set address refuses
    // connections, unique so no key set cached by another test can answer.
    const jwksUrl = `http://127.0.0.1:1/t-${crypto.randomUUID()}/auth/v1/.well-known/jwks.json`;
    const env = testEnv({ SUPABASE_JWKS_URL: jwksUrl });
    // Time is an input: both ES256/RS256 tokens arrive within the failure backoff, however slow
    // the machine.
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
    const fetches = watchFetches();
    const stream = (token: string) =>
      call(streamPath(crypto.randomUUID()), { headers: bearer(token), ip: randomIp() }, env);

    for (const alg of ["ES256", "RS256"] as const) {
      const { res, settled } = await stream(await supabaseAsymmetric(alg));
      expect(res.status).toBe(401);
      expect((await json<{ error_code: string }>(res)).error_code).toBe("unauthorized");
      expect(res.headers.get("WWW-Authenticate")).toContain('error="invalid_token"');
      await settled();
    }
    // One attempt at the key set, not retried, and bounded by a timeout so a key set that hangs
    // cannot hold a request; the second token met the failure backoff and fetched nothing.
    const tries = fetches.filter((f) => f.url === jwksUrl);
    expect(tries).toHaveLength(1);
    expect(tries[0]?.init?.signal).toBeInstanceOf(AbortSignal);

    for (const token of [await supabaseHs256(supabaseClaims()), await anonToken()]) {
      const { res, settled } = await stream(token);
      expect(res.status).toBe(200);
      expect((await readEvents(res)).at(-1)?.event).toBe("done");
      await settled();
    }
  });
});
