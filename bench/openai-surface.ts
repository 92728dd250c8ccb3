/**
 * @module `npm run bench:openai`: first-token time of the OpenAI-compatible route
 * (`/v1/chat/completions`, streaming) next to the native one (`/api/v1/stream`) on the same
 * worker (the Workers runtime as deployed, Upstash store, fake upstream), in alternating random
 * order so both see the same machine. Writes openai-surface-latest.{json,md} (bench/results/local/
 * unless --update-results or --out <dir>).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { agentFor } from "./lib/client";
import { installCleanupHandlers, runMain } from "./lib/procs";
import { resultsDir } from "./lib/results-dir";
import { gatewayVars, machineInfo, mintTokens, ROOT, startStack } from "./lib/stack";
import { fmt, round, summarize } from "./lib/stats";
import { startWranglerDev } from "./lib/wrangler";

installCleanupHandlers();

const ROUNDS = Number(process.env.BENCH_OPENAI_ROUNDS ?? 400);
const WARMUP = 40;
const MESSAGE = "Say hello [[fake tokens=20 delay=0]]";
/** BENCH_OPENAI_AA=1: both columns use the native route, to show the noise floor of the figure. */
const AA = process.env.BENCH_OPENAI_AA === "1";
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

type Route = "native" | "compat";

/** Sends one streaming request; resolves with ms to the first answer token (null: failed). */
function firstToken(url: string, agent: http.Agent, route: Route, token: string, ip: string) {
  const body =
    route === "native"
      ? JSON.stringify({ message: MESSAGE })
      : JSON.stringify({
          model: "gpt-4o-mini",
          stream: true,
          stream_options: { include_usage: true },
          messages: [{ role: "user", content: MESSAGE }],
        });
  const path = route === "native" ? "/api/v1/stream" : "/v1/chat/completions";
  // The first answer token in each wire format: our `message_chunk`, OpenAI's content delta.
  const marker = route === "native" ? "event: message_chunk" : '"content":"';
  const start = nowMs();
  return new Promise<number | null>((resolve) => {
    let first: number | null = null;
    const req = http.request(`${url}${path}`, {
      method: "POST",
      agent,
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        accept: "text/event-stream",
        "cf-connecting-ip": ip,
        "content-length": String(Buffer.byteLength(body)),
      },
    });
    req.on("error", () => resolve(null));
    req.on("response", (res) => {
      res.setEncoding("utf8");
      let seen = "";
      res.on("data", (d: string) => {
        if (first === null) {
          seen += d;
          if (seen.includes(marker)) first = nowMs() - start;
        }
      });
      res.on("end", () => resolve(res.statusCode === 200 ? first : null));
      res.on("error", () => resolve(null));
    });
    req.end(body);
  });
}

async function main(): Promise<void> {
  const machine = await machineInfo();
  const stack = await startStack();
  const run = Date.now().toString(36);
  const dev = await startWranglerDev({
    name: "openai-surface",
    runtime: "miniflare",
    root: ROOT,
    vars: gatewayVars(stack, { prefix: `o${run}`, scope: `openai-${run}` }),
  });
  const tokens = await mintTokens(dev.url, 32, "198.18.201.1");
  const agent = agentFor(8);
  const samples: Record<Route, (number | null)[]> = { native: [], compat: [] };
  let i = 0;
  const once = async (route: Route) => {
    const n = i++;
    return firstToken(
      dev.url,
      agent,
      AA ? "native" : route,
      tokens[n % tokens.length] as string,
      `198.18.9.${(n % 200) + 1}`,
    );
  };
  for (let w = 0; w < WARMUP; w++) {
    await once("native");
    await once("compat");
  }
  for (let r = 0; r < ROUNDS; r++) {
    const order: Route[] = Math.random() < 0.5 ? ["native", "compat"] : ["compat", "native"];
    for (const route of order) samples[route].push(await once(route));
  }
  const native = summarize(samples.native);
  const compat = summarize(samples.compat);
  const failed = (s: (number | null)[]) => s.filter((x) => x === null).length;
  // Paired by round: both requests of a round ran back to back, so machine drift cancels out.
  const paired = summarize(
    samples.compat.map((c, r) => {
      const n = samples.native[r];
      return c === null || n === null || n === undefined ? null : c - n;
    }),
  );
  const diff = (a: number | null, b: number | null) => (a === null || b === null ? null : a - b);
  const result = {
    when: new Date().toISOString(),
    machine,
    runtime: "miniflare (the Workers runtime as wrangler deploy bundles the worker)",
    store: "upstash (local REST server over redis-server)",
    rounds: ROUNDS,
    a_a_control: AA,
    first_token_ms: {
      native: { ...native, failed: failed(samples.native) },
      compat: { ...compat, failed: failed(samples.compat) },
    },
    compat_over_native_p50_ms: round(diff(compat.p50, native.p50), 3),
    compat_over_native_p95_ms: round(diff(compat.p95, native.p95), 3),
    paired_difference_median_ms: round(paired.p50, 3),
  };
  const md = [
    "# First token: OpenAI-compatible route vs native route",
    "",
    `${result.when}, ${machine.cpu} × ${machine.cores}, Node ${process.version}; ${result.runtime}, ${result.store}; ${ROUNDS} rounds, random order per round.`,
    "",
    "| route | n | failed | p50 ms | p95 ms | p99 ms |",
    "|---|---|---|---|---|---|",
    `| \`POST /api/v1/stream\` | ${native.n} | ${failed(samples.native)} | ${fmt(native.p50, 2)} | ${fmt(native.p95, 2)} | ${fmt(native.p99, 2)} |`,
    `| \`POST /v1/chat/completions\` (stream) | ${compat.n} | ${failed(samples.compat)} | ${fmt(compat.p50, 2)} | ${fmt(compat.p95, 2)} | ${fmt(compat.p99, 2)} |`,
    "",
    `Compatible over native: p50 ${fmt(result.compat_over_native_p50_ms, 3)} ms, p95 ${fmt(result.compat_over_native_p95_ms, 3)} ms; median of the per-round differences ${fmt(result.paired_difference_median_ms, 3)} ms.`,
    "",
  ].join("\n");
  const out = resultsDir(process.argv.slice(2), ROOT);
  mkdirSync(out, { recursive: true });
  const file = AA ? "openai-surface-aa" : "openai-surface-latest";
  writeFileSync(join(out, `${file}.json`), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(out, `${file}.md`), md);
  console.log(md);
}

runMain(main);
