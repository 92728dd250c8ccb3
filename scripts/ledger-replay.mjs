#!/usr/bin/env node
/**
 * @module Replays ledger records whose D1 send or limits-store write failed: reads log lines (a
 * file or stdin), picks the `ledger_send_failed` and `ledger_write_failed` events (a record in
 * both is replayed once), and posts their `replay` records to the operator API
 * (POST /api/v1/admin/ledger), which writes each to the limits store (its spend, its hold's
 * settlement) and to D1, idempotently by record id.
 * Usage: ADMIN_TOKEN=... npm run ledger:replay -- --url <base-url> [file] [--dry-run]
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";

/** The log events that carry a whole record under `replay`. */
const EVENTS = ["ledger_send_failed", "ledger_write_failed"];
const hasEvent = (text) => EVENTS.some((e) => text.includes(e));
const BATCH = 100;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { url: { type: "string" }, "dry-run": { type: "boolean", default: false } },
});
const base = values.url?.replace(/\/+$/, "");
const token = process.env.ADMIN_TOKEN;
if (!values["dry-run"] && (!base || !token)) {
  console.error(
    "usage: ADMIN_TOKEN=... npm run ledger:replay -- --url <base-url> [file] [--dry-run]",
  );
  process.exit(2);
}

/**
 * The replay records in one parsed value: a log object itself, or one nested in an export
 * (Workers Logs and `wrangler tail --format json` wrap the line in other JSON, as a string).
 */
function collect(value, out, depth = 0) {
  if (depth > 6 || value === null) return;
  if (typeof value === "string") {
    const at = value.indexOf("{");
    if (at >= 0 && hasEvent(value)) {
      try {
        collect(JSON.parse(value.slice(at)), out, depth + 1);
      } catch {}
    }
    return;
  }
  if (typeof value !== "object") return;
  if (EVENTS.includes(value.event) && typeof value.replay === "string") {
    try {
      out.push(JSON.parse(value.replay));
    } catch {
      console.error(`skipped a ${value.event} line whose replay is not JSON`);
    }
    return;
  }
  for (const v of Object.values(value)) collect(v, out, depth + 1);
}

const input = positionals[0] ? createReadStream(positionals[0]) : process.stdin;
const records = new Map();
for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
  if (!hasEvent(line)) continue;
  const found = [];
  collect(line, found);
  for (const r of found) if (typeof r?.recordId === "string") records.set(r.recordId, r);
}
console.log(`found ${records.size} record(s) to replay`);
if (values["dry-run"]) {
  for (const r of records.values()) console.log(JSON.stringify(r));
  process.exit(0);
}

const all = [...records.values()];
let written = 0;
let duplicate = 0;
for (let i = 0; i < all.length; i += BATCH) {
  const res = await fetch(`${base}/api/v1/admin/ledger`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ records: all.slice(i, i + BATCH) }),
  });
  const body = await res.json().catch(() => null);
  if (res.status !== 200) {
    console.error(`records ${i + 1}..${i + BATCH}: ${res.status} ${JSON.stringify(body)}`);
    console.error(`written so far: ${written}, already there: ${duplicate}; run again to resume`);
    process.exit(1);
  }
  written += body.written;
  duplicate += body.duplicate;
}
console.log(`written ${written}, already in the ledger ${duplicate}`);
