/**
 * @module The operator API over the D1 ledger: sums equal the records, valid CSV, pagination,
 * and refusals (tokens, ranges, limits, replay bodies) that spend nothing.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Bindings } from "../../src/env";
import { D1LedgerBook, PAGE_SQL, SPEND_SQL } from "../../src/ledger/d1-book";
import type { LedgerRecord } from "../../src/ledger/record";
import { call, json, testEnv } from "../helpers/app";
import { parseCsv } from "../helpers/csv";
import { record } from "../helpers/ledger";
import { bearer } from "../helpers/tokens";

const book = new D1LedgerBook((env as unknown as Bindings).LEDGER_DB);
const ADMIN_TOKEN = "admin-token-for-the-operator-tests-0123456789";
const admin = testEnv({ ADMIN_TOKEN });
const DAY = 86_400_000;

const get = (path: string, token: string | null = ADMIN_TOKEN, bindings = admin) =>
  call(path, { headers: token ? bearer(token) : {} }, bindings).then((c) => c.res);

/** Years of their own per run and per seed, so no other records fall in a test's range. */
const firstYear = 2001 + Math.floor(Math.random() * 50);
let year = firstYear;
const day = (d: number, y = year) =>
  new Date(Date.UTC(y, 2, 1) + d * DAY).toISOString().slice(0, 10);

/** 60 records over 3 days, 3 models and 4 users (one with a name a CSV must quote). */
async function seed(): Promise<LedgerRecord[]> {
  year++;
  const users = [`supabase:${crypto.randomUUID()}`, `anon:${crypto.randomUUID()}`];
  users.push(`supabase:we"ird, name\r\n${crypto.randomUUID()}`, `supabase:${crypto.randomUUID()}`);
  const models = ["gpt-4o-mini", "gpt-4o", "o3-mini"];
  const records = Array.from({ length: 60 }, (_, i) =>
    record({
      userKey: users[i % 4] as string,
      model: models[i % 3] as string,
      streamId: i === 0 ? "-cmd" : `s${i}`,
      startedAt: Date.parse(`${day(i % 3)}T12:00:00Z`) + i * 1000,
      inputTokens: 10 + i,
      outputTokens: 100 + 7 * i,
      costMicroUsd: 1_000 + 333 * i,
    }),
  );
  expect(await book.insert(records)).toEqual({ written: 60, duplicate: 0 });
  return records;
}

function sums(records: LedgerRecord[], key: (r: LedgerRecord) => string) {
  const out = new Map<string, { streams: number; i: number; o: number; c: number }>();
  for (const r of records) {
    const s = out.get(key(r)) ?? { streams: 0, i: 0, o: 0, c: 0 };
    s.streams++;
    s.i += r.inputTokens;
    s.o += r.outputTokens;
    s.c += r.costMicroUsd;
    out.set(key(r), s);
  }
  return out;
}

describe("GET /api/v1/admin/spend", () => {
  it.each([
    ["day", (r: LedgerRecord) => new Date(r.startedAt).toISOString().slice(0, 10)],
    ["model", (r: LedgerRecord) => r.model],
    ["user", (r: LedgerRecord) => r.userKey],
  ] as const)("sums the records per %s, in JSON and in CSV", async (group, keyOf) => {
    const records = await seed();
    const expected = sums(records, keyOf);
    const res = await get(`/api/v1/admin/spend?from=${day(0)}&to=${day(2)}&group=${group}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("Cache-Control")).toBe("no-store");
    const body = await json<{ rows: Record<string, number | string>[]; truncated: boolean }>(res);
    expect(body.truncated).toBe(false);
    const want = [...expected].map(([key, v]) => ({
      [group]: key,
      streams: v.streams,
      input_tokens: v.i,
      output_tokens: v.o,
      cost_usd: v.c / 1e6,
      cost_micro_usd: v.c,
    }));
    expect(body.rows).toHaveLength(want.length);
    expect(body.rows).toEqual(expect.arrayContaining(want));
    if (group === "user") {
      const costs = body.rows.map((r) => Number(r.cost_micro_usd));
      expect(costs).toEqual([...costs].sort((a, b) => b - a));
    } else {
      const keys = body.rows.map((r) => String(r[group]));
      expect(keys).toEqual([...keys].sort());
    }

    const csv = await get(
      `/api/v1/admin/spend?from=${day(0)}&to=${day(2)}&group=${group}&format=csv`,
    );
    expect(csv.headers.get("Content-Type")).toMatch(/^text\/csv; charset=utf-8/);
    const table = parseCsv(await csv.text());
    expect(table[0]).toEqual([
      group,
      "streams",
      "input_tokens",
      "output_tokens",
      "cost_usd",
      "cost_micro_usd",
    ]);
    expect(table.slice(1)).toEqual(
      body.rows.map((r) =>
        [r[group], r.streams, r.input_tokens, r.output_tokens, r.cost_usd, r.cost_micro_usd].map(
          String,
        ),
      ),
    );
  });

  it("counts only the days of the range, `to` inclusive", async () => {
    const records = await seed();
    const users = new Set(records.map((r) => r.userKey));
    const res = await get(`/api/v1/admin/spend?from=${day(1)}&to=${day(1)}&group=user`);
    const rows = (await json<{ rows: { user: string; streams: number }[] }>(res)).rows;
    expect(rows.every((r) => users.has(r.user))).toBe(true);
    expect(rows.reduce((n, r) => n + r.streams, 0)).toBe(20);
  });

  it.each([
    ["from after to", `from=${day(2)}&to=${day(1)}`, "to"],
    ["93 days", `from=${day(0)}&to=${day(92)}`, "to"],
    ["no such day", `from=${year}-02-30&to=${day(1)}`, "from"],
    ["not a day", `from=yesterday&to=${day(1)}`, "from"],
    ["no range", "group=day", "from"],
    ["an unknown group", `from=${day(0)}&to=${day(1)}&group=provider`, "group"],
    ["an unknown parameter", `from=${day(0)}&to=${day(1)}&sql=1`, "sql"],
    ["a zero limit", `from=${day(0)}&to=${day(1)}&limit=0`, "limit"],
  ])("refuses %s with 422", async (_, query, field) => {
    const res = await get(`/api/v1/admin/spend?${query}`);
    expect(res.status).toBe(422);
    const body = await json<{ error_code: string; fields: string[] }>(res);
    expect(body.error_code).toBe("invalid_input");
    expect(body.fields).toContain(field);
  });

  it("bounds the rows with limit, and says when it cut", async () => {
    await seed();
    const rows = async (limit: number) =>
      json<{ rows: unknown[]; truncated: boolean }>(
        await get(`/api/v1/admin/spend?from=${day(0)}&to=${day(2)}&group=user&limit=${limit}`),
      );
    expect(await rows(2)).toMatchObject({ rows: [{}, {}], truncated: true });
    expect((await rows(4)).truncated).toBe(false);
  });

  it("answers a range of exactly 92 days", async () => {
    expect((await get(`/api/v1/admin/spend?from=${day(0)}&to=${day(91)}`)).status).toBe(200);
  });
});

describe("GET /api/v1/admin/ledger", () => {
  it("pages through one user's records newest first, each once", async () => {
    const user = `supabase:${crypto.randomUUID()}`;
    // 250 records, some sharing a started_at, so the cursor must break ties by record id.
    const records = Array.from({ length: 250 }, (_, i) =>
      record({ userKey: user, startedAt: Date.parse(`${day(5)}T00:00:00Z`) + Math.floor(i / 3) }),
    );
    await book.insert(records);
    const seen: { record_id: string; started_at: string }[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = `user=${encodeURIComponent(user)}${cursor ? `&cursor=${cursor}` : ""}`;
      const res = await get(`/api/v1/admin/ledger?${q}`);
      expect(res.status).toBe(200);
      const body = await json<{ records: typeof seen; next_cursor: string | null }>(res);
      expect(body.records.length).toBe(pages < 2 ? 100 : 50);
      seen.push(...body.records);
      cursor = body.next_cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(new Set(seen.map((r) => r.record_id)).size).toBe(250);
    const times = seen.map((r) => Date.parse(r.started_at));
    expect(times).toEqual([...times].sort((a, b) => b - a));
  });

  it("shows a record with the contract's fields, and as CSV", async () => {
    const r = record({ streamId: "=HYPERLINK(1)", ttftMs: null });
    await book.insert([r]);
    const res = await get(`/api/v1/admin/ledger?user=${encodeURIComponent(r.userKey)}&limit=1000`);
    const body = await json<{ records: unknown[]; next_cursor: null }>(res);
    expect(body).toEqual({
      records: [
        {
          record_id: r.recordId,
          stream_id: r.streamId,
          user: r.userKey,
          model: r.model,
          provider: r.provider,
          upstream_model: r.upstreamModel ?? null,
          input_tokens: r.inputTokens,
          output_tokens: r.outputTokens,
          cost_usd: r.costMicroUsd / 1e6,
          cost_micro_usd: r.costMicroUsd,
          finish_reason: r.finishReason,
          usage_source: r.usageSource,
          started_at: new Date(r.startedAt).toISOString(),
          ttft_ms: null,
          duration_ms: r.durationMs,
        },
      ],
      next_cursor: null,
    });
    const csv = await get(`/api/v1/admin/ledger?user=${encodeURIComponent(r.userKey)}&format=csv`);
    const table = parseCsv(await csv.text());
    expect(table).toHaveLength(2);
    expect(table[0]?.[0]).toBe("record_id");
    // A formula-looking cell is defused for spreadsheets.
    expect(table[1]?.[1]).toBe("'=HYPERLINK(1)");
    expect(table[1]?.[12]).toBe("");
  });

  it.each([
    ["a limit over 1000", "user=u&limit=1001", "limit"],
    ["a limit of 0", "user=u&limit=0", "limit"],
    ["a forged cursor", "user=u&cursor=bm90LWEtY3Vyc29y", "cursor"],
    ["no user", "limit=5", "user"],
    ["an unknown parameter", "user=u&order=asc", "order"],
  ])("refuses %s with 422", async (_, query, field) => {
    const res = await get(`/api/v1/admin/ledger?${query}`);
    expect(res.status).toBe(422);
    expect((await json<{ fields: string[] }>(res)).fields).toContain(field);
  });
});

describe("the operator API's token", () => {
  const paths = [
    "/api/v1/admin/spend?from=2026-01-01&to=2026-01-02",
    "/api/v1/admin/ledger?user=u",
  ];

  it.each(paths)("does not exist while ADMIN_TOKEN is unset: %s", async (path) => {
    const res = await get(path, ADMIN_TOKEN, testEnv({ ADMIN_TOKEN: undefined }));
    expect(res.status).toBe(404);
    expect((await json(res)).error_code).toBe("not_found");
  });

  it.each(paths)("answers 401 to a wrong or missing token: %s", async (path) => {
    const wrong = await get(path, `${ADMIN_TOKEN}x`);
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("WWW-Authenticate")).toBe('Bearer error="invalid_token"');
    const none = await get(path, null);
    expect(none.status).toBe(401);
    expect(none.headers.get("WWW-Authenticate")).toMatch(/^Bearer realm=/);
    // The metrics token is not an admin token.
    expect(
      (await get(path, "metrics-token", testEnv({ ADMIN_TOKEN, METRICS_TOKEN: "metrics-token" })))
        .status,
    ).toBe(401);
  });

  it("refuses to run with an ADMIN_TOKEN shorter than 32 characters", async () => {
    const res = await get(paths[1] as string, "short", testEnv({ ADMIN_TOKEN: "short" }));
    expect(res.status).toBe(500);
    expect((await json(res)).error_code).toBe("misconfigured");
  });
});

describe("the ledger's indexes", () => {
  const db = (env as unknown as Bindings).LEDGER_DB;
  const plan = async (sql: string, ...args: unknown[]) =>
    (
      await db
        .prepare(`EXPLAIN QUERY PLAN ${sql}`)
        .bind(...args)
        .all<{ detail: string }>()
    ).results
      .map((r) => r.detail)
      .join("; ");

  it.each(["day", "model", "user"] as const)(
    "sums a range of days by %s from the covering index, never the table",
    async (group) => {
      const p = await plan(SPEND_SQL[group], "2026-01-01", "2026-01-31", 10);
      expect(p).toMatch(/SEARCH ledger USING COVERING INDEX ledger_by_day \(day>\? AND day<\?\)/);
    },
  );

  it("walks one user's records in order from the user index, also after a cursor", async () => {
    for (const [sql, args] of [
      [PAGE_SQL.first, ["u", 101]],
      [PAGE_SQL.next, ["u", 1, "r", 101]],
    ] as const) {
      const p = await plan(sql, ...args);
      expect(p).toMatch(/SEARCH ledger USING INDEX ledger_by_user \(user=\?/);
      expect(p).not.toContain("TEMP B-TREE");
    }
  });
});
