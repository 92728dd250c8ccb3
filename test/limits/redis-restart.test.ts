/**
 * @module A fault drill in workerd (one of the critical ones of `npm run drills`): redis-server
 * killed and restarted under the Upstash store, on a private redis of its own (`drillUpstashUrl`).
 */
import { afterAll, afterEach, describe, expect, inject, it, vi } from "vitest";
import type { Bindings } from "../../src/env";
import { call, json } from "../helpers/app";
import { streamPath } from "../helpers/gate";
import { openEvents, readEvents } from "../helpers/sse";
import { randomIp, storeEnv } from "../helpers/stores";
import { anonToken, bearer, supabaseClaims, supabaseHs256 } from "../helpers/tokens";

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

/** The worker's console.error lines from now on, parsed (until the afterEach restores console). */
function errorLog(): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => {
    const text = args.map(String).join(" ");
    try {
      lines.push(JSON.parse(text) as Record<string, unknown>);
    } catch {
      lines.push({ text });
    }
  });
  return lines;
}

async function upstreamSaw(id: string): Promise<boolean> {
  return (await fetch(`${UPSTREAM_BASE}/__test/requests/${id}`)).status === 200;
}

describe("redis-server killed and restarted (Upstash store)", () => {
  // Whatever happened in a test, leave the drill redis running.
  afterAll(() => redis("restart"));
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("answers 503 limits_unavailable at once (the store's answer, not its timeout) while redis is down, then streams again with the same env", async () => {
    const env = drillEnv();
    const token = await anonToken();
    const ip = randomIp();

    const up = await call(streamPath("up"), { headers: bearer(token), ip }, env);
    expect(up.res.status).toBe(200);
    expect((await readEvents(up.res)).at(-1)?.event).toBe("done");
    await up.settled();

    await redis("kill");
    const errors = errorLog();
    const downId = crypto.randomUUID();
    const down = await call(streamPath(downId), { headers: bearer(token), ip }, env);
    expect(down.res.status).toBe(503);
    const body = await json<{ error_code: string; retry_after: number }>(down.res);
    expect(body.error_code).toBe("limits_unavailable");
    expect(Number(down.res.headers.get("Retry-After"))).toBeGreaterThanOrEqual(1);
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

    // Both came from the store's own answer that redis refused the connection, not from
    // LIMITS_TIMEOUT_MS running out: a dead redis is reported at once, never waited for.
    const refusals = errors.filter((line) => line.event === "error");
    expect(refusals).toEqual(
      [down, mint].map((r) =>
        expect.objectContaining({
          error_code: "limits_unavailable",
          request_id: r.res.headers.get("X-Request-Id"),
          cause: expect.stringMatching(/redis unavailable/),
        }),
      ),
    );
    for (const line of refusals) expect(line.cause).not.toMatch(/timeout|abort/i);

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
