/**
 * @module The latest streams of today's top spender, from the ledger: which model the caller
 * asked for, and which provider and upstream model of its route answered (after a fallback, not
 * the first target).
 */
import type { LedgerRecord } from "./api";
import { watchScroller } from "./scrollers";

const $ = (id: string) => document.getElementById(id) as HTMLElement;
const usd = (v: number) => (v === 0 ? "0" : `$${v.toFixed(6)}`);

/** The columns, in the table's order (index.html has the same headers). */
const CELLS: ((r: LedgerRecord) => string)[] = [
  (r) => r.started_at.slice(0, 19).replace("T", " "),
  (r) => r.model,
  (r) => r.provider,
  (r) => r.upstream_model ?? "—",
  (r) => String(r.input_tokens + r.output_tokens),
  (r) => usd(r.cost_usd),
  (r) => r.finish_reason,
];

/** Shows `records` of `user` (null: nobody streamed today). */
export function drawRecords(user: string | null, records: LedgerRecord[]): void {
  $("streams-whose").textContent = user ? `of ${user}, today's top spender` : "";
  const body = $("streams").querySelector("tbody") as HTMLTableSectionElement;
  body.replaceChildren();
  for (const r of records) {
    const row = body.insertRow();
    for (const cell of CELLS) row.insertCell().textContent = cell(r);
  }
  $("streams-empty").hidden = records.length > 0;
  watchScroller($("streams").parentElement as HTMLElement);
}
