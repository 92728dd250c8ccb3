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
 * Only a line, or a string that is itself JSON, is parsed: never text inside another field.
 * Another event of ours is a leaf, so no field of it (which may carry what a client sent) can
 * pass for a record.
 */
function collect(value, out, depth = 0) {
  if (depth > 6 || value === null) return;
  if (typeof value === "string") {
    // The line itself may carry a prefix (a timestamp, a level); a nested string must be JSON.
    const at = depth === 0 ? value.indexOf("{") : value.trimStart().startsWith("{") ? 0 : -1;
    if (at >= 0 && hasEvent(value)) {
      try {
        collect(JSON.parse(value.slice(at)), out, depth + 1);
      } catch {}
    }
    return;
  }
  if (typeof value !== "object") return;
  if (EVENTS.includes(value.event) && typeof value.replay === "string") {
    out.push(value.replay);
    return;
  }
  if (typeof value.event === "string" && typeof value.level === "string") return;
  for (const v of Object.values(value)) collect(v, out, depth + 1);
}

const input = positionals[0] ? createReadStream(positionals[0]) : process.stdin;
/** Each record id's replay text as first found; an id seen again with other text is refused. */
const records = new Map();
const conflicting = new Set();
for await (const line of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
  if (!hasEvent(line)) continue;
  const found = [];
  collect(line, found);
  for (const text of found) {
    let record;
    try {
      record = JSON.parse(text);
    } catch {
      console.error("skipped a line whose replay is not JSON");
      continue;
    }
    if (typeof record?.recordId !== "string") continue;
    const known = records.get(record.recordId);
    if (known === undefined) records.set(record.recordId, { text, record });
    else if (known.text !== text) conflicting.add(record.recordId);
  }
}
for (const id of conflicting) {
  console.error(`refused record ${id}: two lines give it different contents`);
  records.delete(id);
}
console.log(`found ${records.size} record(s) to replay`);
if (values["dry-run"]) {
  for (const r of records.values()) console.log(JSON.stringify(r.record));
  process.exit(0);
}

const all = [...records.values()].map((r) => r.record);
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
// A refused record is for the operator to look at: the run says so in its exit status.
if (conflicting.size > 0) process.exit(1);
