/**
 * @module GET /api/v1/usage `recent`: the caller's own latest ledger records from D1, naming the
 * provider and upstream model that answered, against two OpenAI-compatible fakes in both stores.
 */
import { decodeJwt } from "jose";
import { describe, expect, inject, it } from "vitest";
import type { Bindings } from "../../src/env";
import { D1LedgerBook } from "../../src/ledger/d1-book";
import { RECENT_RECORDS } from "../../src/routes/usage";
import type { DoneData } from "../../src/stream/frames";
import { call } from "../helpers/app";
import { anonCaller, postAs, type Who } from "../helpers/gate";
import { record, waitForRows } from "../helpers/ledger";
import { readEvents } from "../helpers/sse";
import { type StoreKind, storeEnv } from "../helpers/stores";
import { bearer } from "../helpers/tokens";

const A = inject("upstreamAUrl");
const B = inject("upstreamBUrl");

/** A route of two OpenAI-compatible targets: `a` first, `b` as the fallback. */
function routeEnv(kind: StoreKind, vars: Record<string, string | undefined> = {}): Bindings {
  return {
    ...storeEnv(kind, {
      PROVIDERS: JSON.stringify({
        a: { type: "openai", base_url: `${A}/v1`, api_keys: ["KEY_A"] },
        b: { type: "openai", base_url: `${B}/v1`, api_keys: ["KEY_B"] },
      }),
      MODELS: JSON.stringify({
        "a-then-b": {
          route: [
            { provider: "a", model: "model-a" },
            { provider: "b", model: "model-b" },
          ],
          input_usd_per_million: 1,
          output_usd_per_million: 2,
        },
      }),
      ANON_MODELS: "a-then-b",
      ...vars,
    }),
    KEY_A: "sk-secret-a",
    KEY_B: "sk-secret-b",
  } as Bindings;
}

interface Recent {
  stream_id: string;
  model: string;
  provider: string;
  upstream_model: string | null;
  cost_usd: number;
  finish_reason: string;
  usage_source: string;
  started_at: string;
}

async function recentOf(who: Who, env: Bindings): Promise<Recent[] | null> {
  const { res, settled } = await call(
    "/api/v1/usage",
    { headers: bearer(who.token), ip: who.ip },
    env,
  );
  await settled();
  expect(res.status).toBe(200);
  return ((await res.json()) as { recent: Recent[] | null }).recent;
}

const keyOf = (who: Who) => `anonymous:${decodeJwt(who.token).sub}`;

describe.each<StoreKind>(["durable_object", "upstash"])("usage recent in the %s store", (kind) => {
  it("names the fallback target's provider and upstream model; model stays the client's id", async () => {
    const env = routeEnv(kind);
    const who = await anonCaller();
    const { res, settled } = await postAs(
      who,
      "/api/v1/stream",
      { model: "a-then-b", message: "x [[fake a.status=500 tokens=3]]", cost_cap_usd: 0.05 },
      env,
    );
    expect(res.status).toBe(200);
    const done = (await readEvents(res)).find((e) => e.event === "done")
      ?.data as unknown as DoneData;
    await settled();
    await waitForRows(keyOf(who), 1);
    const recent = await recentOf(who, env);
    expect(recent).toHaveLength(1);
    expect(recent?.[0]).toEqual({
      stream_id: done.stream_id,
      model: "a-then-b",
      provider: "b",
      upstream_model: "model-b",
      input_tokens: done.input_tokens,
      output_tokens: 3,
      cost_usd: done.cost_usd,
      finish_reason: "stop",
      usage_source: "upstream",
      started_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
  });
});

describe("usage recent", () => {
  it(`shows only the caller's own latest ${RECENT_RECORDS} records, newest first`, async () => {
    const env = routeEnv("durable_object");
    const [who, other] = [await anonCaller(), await anonCaller()];
    const now = Date.now();
    const mine = Array.from({ length: RECENT_RECORDS + 2 }, (_, i) =>
      record({ userKey: keyOf(who), startedAt: now - i * 1000, upstreamModel: `m-${i}` }),
    );
    await new D1LedgerBook(env.LEDGER_DB).insert([...mine, record({ userKey: keyOf(other) })]);
    const recent = await recentOf(who, env);
    expect(recent?.map((r) => r.stream_id)).toEqual(
      mine.slice(0, RECENT_RECORDS).map((r) => r.streamId),
    );
    expect(recent?.[0]?.upstream_model).toBe("m-0");
    expect(await recentOf(await anonCaller(), env)).toEqual([]);
  });

  it("is null when no ledger is bound, and the rest of usage still answers", async () => {
    const env = routeEnv("durable_object", { LEDGER_DB: undefined });
    expect(await recentOf(await anonCaller(), env)).toBeNull();
  });
});
