/** @module /api/v1/admin/*: the operator API over the ledger in D1 (spend, records, replay), behind ADMIN_TOKEN. */
import { zValidator } from "@hono/zod-validator";
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import * as z from "zod";
import { requireToken } from "../auth/operator-token";
import type { AppEnv } from "../env";
import { AppError } from "../errors";
import { requireJsonObject, zodHook } from "../input/validate";
import { D1LedgerBook } from "../ledger/d1-book";
import { ledgerRecordSchema, publicRecord, toCsv } from "../ledger/wire";
import { storeFor } from "../limits/select-store";

/** Longest range of days one spend query may cover (`to` inclusive). */
export const MAX_RANGE_DAYS = 92;
/** Records per ledger page: at most, and by default. */
export const MAX_PAGE = 1000;
export const DEFAULT_PAGE = 100;
/** Records one replay request may carry, and its body limit. */
export const MAX_REPLAY = 500;
const MAX_REPLAY_BYTES = 512 * 1024;
const DAY_MS = 86_400_000;

/** 404 while ADMIN_TOKEN is unset (the API does not exist), 401 for a missing or wrong token. */
const requireAdmin = requireToken("admin", (config) => config.adminToken);

const encoder = new TextEncoder();

/** A UTC calendar day, YYYY-MM-DD, that exists (2026-02-30 does not). */
const day = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, "a UTC day like 2026-01-31")
  .refine((d) => {
    const t = Date.parse(`${d}T00:00:00Z`);
    return Number.isFinite(t) && new Date(t).toISOString().startsWith(d);
  }, "no such day");
const format = z.enum(["json", "csv"]).default("json");

const spendQuery = z
  .strictObject({
    from: day,
    to: day,
    group: z.enum(["day", "model", "user"]).default("day"),
    limit: z.coerce.number().int().min(1).max(10_000).default(1_000),
    format,
  })
  .superRefine((q, ctx) => {
    const days = (Date.parse(q.to) - Date.parse(q.from)) / DAY_MS + 1;
    if (days < 1) ctx.addIssue({ code: "custom", path: ["to"], message: "before from" });
    else if (days > MAX_RANGE_DAYS) {
      ctx.addIssue({ code: "custom", path: ["to"], message: `at most ${MAX_RANGE_DAYS} days` });
    }
  });

/** The cursor is the last record's (started_at, record_id), opaque to clients. */
const cursor = z
  .string()
  .max(512)
  .transform((v, ctx) => {
    try {
      const [startedAt, recordId] = JSON.parse(atob(v.replace(/-/g, "+").replace(/_/g, "/")));
      if (Number.isSafeInteger(startedAt) && typeof recordId === "string" && recordId) {
        return { startedAt: startedAt as number, recordId };
      }
    } catch {
      // Falls through to the issue below.
    }
    ctx.addIssue({ code: "custom", message: "not a cursor this API gave out" });
    return z.NEVER;
  });

function encodeCursor(c: { startedAt: number; recordId: string }): string {
  const bytes = encoder.encode(JSON.stringify([c.startedAt, c.recordId]));
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

const ledgerQuery = z.strictObject({
  user: z.string().min(1).max(256),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(DEFAULT_PAGE),
  cursor: cursor.optional(),
  format,
});

const replayBody = z.strictObject({
  records: z.array(ledgerRecordSchema).min(1).max(MAX_REPLAY),
});

function csv(c: Context<AppEnv>, name: string, body: string): Response {
  return c.body(body, 200, {
    "Content-Type": "text/csv; charset=utf-8; header=present",
    "Content-Disposition": `attachment; filename="${name}.csv"`,
  });
}

const SPEND_COLUMNS = ["streams", "input_tokens", "output_tokens", "cost_usd", "cost_micro_usd"];
/** The CSV header of records: publicRecord's keys, in its order. */
const RECORD_COLUMNS = [
  "record_id",
  "stream_id",
  "user",
  "model",
  "provider",
  "input_tokens",
  "output_tokens",
  "cost_usd",
  "cost_micro_usd",
  "finish_reason",
  "usage_source",
  "started_at",
  "ttft_ms",
  "duration_ms",
  // Added with routes (issue 20): last, so earlier columns keep their places.
  "upstream_model",
];

/** The operator API. */
export const adminRoutes = new Hono<AppEnv>()
  .use(requireAdmin)
  .get("/spend", zValidator("query", spendQuery, zodHook), async (c) => {
    const q = c.req.valid("query");
    // One row more than asked says whether the answer was cut.
    const all = await new D1LedgerBook(c.env.LEDGER_DB).spend(q.from, q.to, q.group, q.limit + 1);
    const rows = all.slice(0, q.limit);
    const out = rows.map((r) => ({
      [q.group]: r.key,
      streams: r.streams,
      input_tokens: r.inputTokens,
      output_tokens: r.outputTokens,
      cost_usd: r.costMicroUsd / 1e6,
      cost_micro_usd: r.costMicroUsd,
    }));
    if (q.format === "csv") {
      return csv(c, `spend-${q.from}-${q.to}-${q.group}`, toCsv([q.group, ...SPEND_COLUMNS], out));
    }
    return c.json({
      from: q.from,
      to: q.to,
      group: q.group,
      rows: out,
      truncated: all.length > q.limit,
    });
  })
  .get("/ledger", zValidator("query", ledgerQuery, zodHook), async (c) => {
    const q = c.req.valid("query");
    const page = await new D1LedgerBook(c.env.LEDGER_DB).records(q.user, q.limit, q.cursor ?? null);
    const records = page.records.map(publicRecord);
    const next = page.next ? encodeCursor(page.next) : null;
    if (q.format === "csv") {
      if (next) c.header("X-Next-Cursor", next);
      return csv(c, "ledger", toCsv(RECORD_COLUMNS, records));
    }
    return c.json({ records, next_cursor: next });
  })
  // Replay of records whose queue send or store write failed (`npm run ledger:replay`):
  // idempotent by record id, in the limits store (spend counters, the budget settlement) and in D1.
  .post(
    "/ledger",
    bodyLimit({
      maxSize: MAX_REPLAY_BYTES,
      onError: () => {
        throw new AppError(
          "payload_too_large",
          `the body must be at most ${MAX_REPLAY_BYTES} bytes`,
        );
      },
    }),
    requireJsonObject,
    zValidator("json", replayBody, zodHook),
    async (c) => {
      const { records } = c.req.valid("json");
      const store = storeFor(c.get("config"), c.env);
      await Promise.all(records.map((r) => store.writeLedger(r)));
      return c.json(await new D1LedgerBook(c.env.LEDGER_DB).insert(records));
    },
  );
