/** @module The resume phase's report: its tables as a markdown section. */
import { fmt, table } from "../lib/stats";
import type { ResumeAb } from "./resume";

/** The streams that did not complete, per store and side (none: a line saying so). */
function failures(r: ResumeAb): string {
  const parts: string[] = [];
  for (const s of r.stores) {
    for (const side of ["off", "on"] as const) {
      const e = {
        cpu_loops: s.cpu_ms_per_stream.errors[side],
        held_open: s.heap_per_open_stream?.[side].errors ?? {},
      };
      for (const [phase, errors] of Object.entries(e)) {
        const list = Object.entries(errors).map(([k, v]) => `${v} × ${k}`);
        if (list.length) parts.push(`${s.store} resume ${side}, ${phase}: ${list.join(", ")}`);
      }
    }
  }
  return parts.length
    ? `Streams that did not complete: ${parts.join("; ")}.`
    : "Every stream completed.";
}

/** The phase as a markdown section. */
export function resumeMarkdown(r: ResumeAb): string {
  const q = (x: { p25: number | null; p50: number | null; p75: number | null }) =>
    `${fmt(x.p50, 2)} (${fmt(x.p25, 2)} to ${fmt(x.p75, 2)})`;
  const yes = (b: boolean | null) => (b === null ? "–" : b ? "yes" : "**no**");
  const rows: string[][] = [];
  for (const s of r.stores) {
    const h = s.heap_per_open_stream;
    for (const side of ["off", "on"] as const) {
      rows.push([
        `${s.store}, resume ${side}`,
        q(side === "off" ? s.over_floor.resume_off : s.over_floor.resume_on),
        fmt(s.cpu_ms_per_stream.short_20_tokens[side], 3),
        fmt(s.cpu_ms_per_stream.short_20_tokens_c64[side], 3),
        fmt(s.cpu_ms_per_stream.long_2000_tokens[side], 2),
        h ? `${fmt(h[side].per_open_stream_kib, 1)} (${h[side].open_when_read} open)` : "–",
        h ? fmt(h[side].left_after_per_stream_kib, 1) : "–",
      ]);
    }
  }
  const diff: string[][] = r.stores.map((s) => [
    s.store,
    String(s.rounds),
    q(s.on_minus_off),
    `${fmt(s.cpu_ms_per_stream.short_20_tokens.on_minus_off, 3)} (${fmt(s.cpu_ms_per_stream.short_20_tokens.percent, 1)} %)`,
    `${fmt(s.cpu_ms_per_stream.short_20_tokens_c64.on_minus_off, 3)} (${fmt(s.cpu_ms_per_stream.short_20_tokens_c64.percent, 1)} %)`,
    `${fmt(s.cpu_ms_per_stream.long_2000_tokens.on_minus_off, 2)} (${fmt(s.cpu_ms_per_stream.long_2000_tokens.percent, 1)} %)`,
    `${yes(s.bar.first_token_within_1ms)} / ${yes(s.bar.cpu_short_within_20_percent)}`,
  ]);
  const writes: string[][] = r.stores.flatMap((s) =>
    (["short", "long", "slow"] as const).map((k) => [
      s.store,
      k,
      String(s.storage_writes[k].streams),
      fmt(s.storage_writes[k].tokens_per_stream, 0),
      fmt(s.storage_writes[k].writes_per_stream, 2),
      fmt(s.storage_writes[k].writes_per_1k_tokens, 2),
    ]),
  );
  return [
    "## Resumable streams: before (STREAM_RESUME_TTL_S=0) and after (the default)",
    "",
    `${r.runtime}; the same build, two gateways per store. First token over the floor: median of per-round differences, ms (25th to 75th percentile). CPU per stream of the gateway's workerd (its stream owners included) over closed loops at c=16 (the short stream also at c=64). Heap per open stream: ${r.request.open_streams}, the live heap after a full collection once all are open (or ${r.request.open_wait_s} s passed), over the heap before, per open stream; "left after": the heap after they ended, per stream.`,
    "",
    table(
      [
        "gateway",
        "first token over the floor, ms",
        "CPU per 20-token stream, ms",
        "at c=64",
        "CPU per 2,000-token stream, ms",
        "heap per open stream, KiB",
        "heap left after, KiB per stream",
      ],
      rows,
    ),
    "",
    "On minus off (the cost of resumability), and the issue's bar (≤ 1 ms of first token / ≤ 20 % CPU per short stream, at c=16 and at c=64):",
    "",
    table(
      [
        "store",
        "paired rounds",
        "first token, ms",
        "CPU per 20-token stream, ms",
        "at c=64",
        "CPU per 2,000-token stream, ms",
        "within the bar",
      ],
      diff,
    ),
    "",
    "Storage writes of the stream owners (SQLite rows written, from their `stream_end` lines; alarm writes are not counted: at most two per stream, none while an earlier one is pending):",
    "",
    table(
      [
        "store",
        "stream",
        "streams",
        "tokens per stream",
        "writes per stream",
        "writes per 1,000 tokens",
      ],
      writes,
    ),
    "",
    "What the heap per open stream is made of with resume on: the kinds of object (a heap census before the streams and while they are open) that grew most, per open stream:",
    "",
    table(
      ["store", "kind", "objects per stream", "KiB per stream"],
      r.stores.flatMap((s) =>
        (s.heap_per_open_stream?.on.per_open_stream_by_kind ?? []).map((k) => [
          s.store,
          `\`${k.kind}\``,
          fmt(k.per_stream, 1),
          fmt(k.kib_per_stream, 2),
        ]),
      ),
    ),
    "",
    failures(r),
    "",
  ].join("\n");
}
