/**
 * @module A fault drill in workerd (one of the critical ones of `npm run drills`): the JWKS server
 * unreachable when a fresh env verifies its first token.
 */
import { describe, expect, it } from "vitest";
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

describe("JWKS server down on a cold start", () => {
  it("keeps HS256 Supabase and anonymous tokens streaming and answers ES256/RS256 with 401", async () => {
    // A fresh env (a config parsed for the first time) whose key set address refuses
    // connections, unique so no key set cached by another test can answer.
    const env = testEnv({
      SUPABASE_JWKS_URL: `http://127.0.0.1:1/t-${crypto.randomUUID()}/auth/v1/.well-known/jwks.json`,
    });
    const stream = (token: string) =>
      call(streamPath(crypto.randomUUID()), { headers: bearer(token), ip: randomIp() }, env);

    for (const alg of ["ES256", "RS256"] as const) {
      const started = Date.now();
      const { res, settled } = await stream(await supabaseAsymmetric(alg));
      expect(res.status).toBe(401);
      expect((await json<{ error_code: string }>(res)).error_code).toBe("unauthorized");
      expect(res.headers.get("WWW-Authenticate")).toContain('error="invalid_token"');
      expect(Date.now() - started).toBeLessThan(4_000);
      await settled();
    }

    for (const token of [await supabaseHs256(supabaseClaims()), await anonToken()]) {
      const { res, settled } = await stream(token);
      expect(res.status).toBe(200);
      expect((await readEvents(res)).at(-1)?.event).toBe("done");
      await settled();
    }
  });
});
