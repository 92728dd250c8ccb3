/**
 * @module Fault drills in workerd (the critical ones of `npm run drills`): redis-server killed and
 * restarted under the Upstash store, on a private redis of its own (`drillUpstashUrl`), and the
 * JWKS server unreachable when a fresh env verifies its first token.
 */
import { afterAll, describe, expect, inject, it } from "vitest";
import type { Bindings } from "../../src/env";
import { call, json, testEnv } from "../helpers/app";
import { openEvents, readEvents } from "../helpers/sse";
import { randomIp, storeEnv } from "../helpers/stores";
import {
  anonToken,
  bearer,
  supabaseAsymmetric,
  supabaseClaims,
  supabaseHs256,
} from "../helpers/tokens";

const DRILL_UPSTASH = inject("drillUpstashUrl");
const UPSTREAM_BASE = inject("upstreamUrl").replace(/\/v1$/, "");
/** wrangler.toml's LIMITS_TIMEOUT_MS, which the test env keeps. */
const LIMITS_TIMEOUT_MS = 1_000;

/** Kills or restarts the drill redis through the local Upstash server's test hook. */
async function redis(action: "kill" | "restart"): Promise<void> {
  const res = await fetch(`${DRILL_UPSTASH}/__test/redis`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ action }),
  });
  expect(res.status).toBe(200);
}

/** An Upstash-store env on the drill server, in a scope of its own. */
function drillEnv(): Bindings {
  return storeEnv("upstash", {
    UPSTASH_REDIS_REST_URL: `${DRILL_UPSTASH}/__scope/${crypto.randomUUID()}`,
    LIMITS_TIMEOUT_MS: String(LIMITS_TIMEOUT_MS),
  });
}

function streamPath(id: string, directive = "tokens=3"): string {
  return `/api/v1/stream?message=${encodeURIComponent(`hi [[fake id=${id} ${directive}]]`)}`;
}

async function upstreamSaw(id: string): Promise<boolean> {
  return (await fetch(`${UPSTREAM_BASE}/__test/requests/${id}`)).status === 200;
}

describe("redis-server killed and restarted (Upstash store)", () => {
  // Whatever happened in a test, leave the drill redis running.
  afterAll(() => redis("restart"));

  it("answers 503 limits_unavailable within LIMITS_TIMEOUT_MS while redis is down, then streams again with the same env", async () => {
    const env = drillEnv();
    const token = await anonToken();
    const ip = randomIp();

    const up = await call(streamPath("up"), { headers: bearer(token), ip }, env);
    expect(up.res.status).toBe(200);
    expect((await readEvents(up.res)).at(-1)?.event).toBe("done");
    await up.settled();

    await redis("kill");
    const downId = crypto.randomUUID();
    const started = Date.now();
    const down = await call(streamPath(downId), { headers: bearer(token), ip }, env);
    const took = Date.now() - started;
    expect(down.res.status).toBe(503);
    const body = await json<{ error_code: string; retry_after: number }>(down.res);
    expect(body.error_code).toBe("limits_unavailable");
    expect(Number(down.res.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
    expect(took).toBeLessThanOrEqual(LIMITS_TIMEOUT_MS);
    expect(await upstreamSaw(downId)).toBe(false);
    await down.settled();

    // Minting fails closed as well: a new identity cannot be had while limits cannot apply.
    const mint = await call(
      "/api/v1/anon_session",
      { method: "POST", headers: { "Content-Type": "application/json" }, ip },
      env,
    );
    expect(mint.res.status).toBe(503);
    expect((await json<{ error_code: string }>(mint.res)).error_code).toBe("limits_unavailable");

    await redis("restart");
    // The same env object: the same parsed config and store client, no restart of anything.
    const back = await call(streamPath(crypto.randomUUID()), { headers: bearer(token), ip }, env);
    expect(back.res.status).toBe(200);
    const events = await readEvents(back.res);
    expect(events.at(-1)?.event).toBe("done");
    expect(events.filter((e) => e.event === "message_chunk")).toHaveLength(3);
    await back.settled();
  });

  it("lets a stream that passed its limits finish when redis dies under it", async () => {
    const env = drillEnv();
    const id = crypto.randomUUID();
    const running = await call(
      streamPath(id, "tokens=6 delay=60"),
      { headers: bearer(await supabaseHs256(supabaseClaims())), ip: randomIp() },
      env,
    );
    expect(running.res.status).toBe(200);
    const reader = openEvents(running.res);
    expect((await reader.next())?.event).toBe("message_chunk");
    await redis("kill");
    const rest = await reader.rest();
    expect(rest.at(-1)?.event).toBe("done");
    expect(rest.filter((e) => e.event === "message_chunk")).toHaveLength(5);
    // Its ledger write fails (retried, then logged with the record for replay); nothing throws.
    await running.settled();
    await redis("restart");
  });
});

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
