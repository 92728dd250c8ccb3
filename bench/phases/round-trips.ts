/**
 * @module Store round trips per stream, counted at the local Upstash server, and one round trip
 * from Node on its own.
 */
import http from "node:http";
import { agentFor, completed } from "../lib/client";
import { sleep } from "../lib/procs";
import { type Stack, UPSTASH_TOKEN, upstashStats } from "../lib/stack";
import { summarize } from "../lib/stats";
import { type BenchTarget, failureKind, nowMs, RUN, send } from "./common";

/** Waits until the scope's request count stops changing for `quietMs` (at most `maxMs`). */
export async function settledStats(stack: Stack, scope: string, quietMs = 300, maxMs = 5_000) {
  let last = await upstashStats(stack, scope);
  let since = Date.now();
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline) {
    await sleep(50);
    const now = await upstashStats(stack, scope);
    if (now.requests !== last.requests) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) break;
  }
  return last;
}

export interface RoundTrips {
  beforeFirstByte: number;
  beforeFirstToken: number;
  /** Right after the stream ended (the ledger write). */
  atEnd: number;
  /** Everything after the headers, once the metrics batch was flushed too. */
  inWaitUntil: number;
  commandsBeforeFirstByte: number;
  commandsInWaitUntil: number;
}

/** Longer than the gateway's metrics batch interval (METRICS_FLUSH_MS, 1 s by default). */
const FLUSH_QUIET_MS = 1_300;

/**
 * Store round trips of one stream, one request at a time, counted at the local Upstash server:
 * when the response's first byte (its headers) arrives, at the first token, right after the
 * stream ended (the ledger write), and once nothing more arrived for longer than the metrics
 * batch interval (the isolate's metrics flush, which a lone request pays for alone).
 */
export async function roundTripsOf(
  stack: Stack,
  scope: string,
  t: BenchTarget,
  token?: string,
): Promise<RoundTrips> {
  // Quiet for longer than a metrics flush: nothing from an earlier request is still due.
  const before = await settledStats(stack, scope, FLUSH_QUIET_MS, 10_000);
  let atHeaders: Promise<{ requests: number; commands: number }> | undefined;
  let atToken: Promise<{ requests: number; commands: number }> | undefined;
  // The first token comes 80 ms after the headers and the end 300 ms after the first token, so
  // no count is taken while the next step's round trips may be in flight.
  const r = await send(t, "Count my round trips [[fake tokens=3 firstDelay=80 delay=150]]", {
    ...(token ? { token } : {}),
    onHeaders: () => {
      atHeaders = upstashStats(stack, scope);
    },
    onToken: (n) => {
      if (n === 1) atToken = upstashStats(stack, scope);
    },
  });
  const [h, f] = await Promise.all([atHeaders, atToken]);
  const end = await settledStats(stack, scope, 200);
  const after = await settledStats(stack, scope, FLUSH_QUIET_MS, 10_000);
  if (!completed(r) || !h || !f) throw new Error(`round-trip stream failed: ${failureKind(r)}`);
  return {
    beforeFirstByte: h.requests - before.requests,
    beforeFirstToken: f.requests - before.requests,
    atEnd: end.requests - h.requests,
    inWaitUntil: after.requests - h.requests,
    commandsBeforeFirstByte: h.commands - before.commands,
    commandsInWaitUntil: after.commands - h.commands,
  };
}

/** One Upstash REST round trip from Node: a /pipeline of two small scripts, like the rate limits. */
export async function probeRoundTrip(stack: Stack, n: number) {
  const agent = agentFor(1);
  const script = "return redis.call('INCR', KEYS[1])";
  const body = JSON.stringify([
    ["EVAL", script, "1", `probe:${RUN}:a`],
    ["EVAL", script, "1", `probe:${RUN}:b`],
  ]);
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = nowMs();
    await new Promise<void>((resolve, reject) => {
      const req = http.request(
        `${stack.upstashUrl}/__scope/probe-${RUN}/pipeline`,
        {
          method: "POST",
          agent,
          headers: {
            authorization: `Bearer ${UPSTASH_TOKEN}`,
            "content-type": "application/json",
            "content-length": String(Buffer.byteLength(body)),
          },
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve());
        },
      );
      req.on("error", reject);
      req.end(body);
    });
    times.push(nowMs() - start);
  }
  agent.destroy();
  // The first requests open the connection and warm the server: left out.
  return summarize(times.slice(Math.min(20, n >> 2)));
}
