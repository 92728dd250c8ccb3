/**
 * @module `npm run drills`: fault drills against the gateway under `wrangler dev`, each with what
 * the contract says must happen and what did:
 *   1. redis-server killed and restarted while streams run (Upstash store): 503
 *      `limits_unavailable` within LIMITS_TIMEOUT_MS while it is down, streams again once it is
 *      back, the same workerd process throughout;
 *   2. the store hanging: 503 within LIMITS_TIMEOUT_MS, then back;
 *   3. the upstream slow, failing, cut, malformed or hanging;
 *   4. the JWKS server down when the Worker starts cold: HS256 and anonymous tokens still stream,
 *      ES256 gets 401, and once the JWKS answers ES256 works without a restart.
 * Writes drills-latest.json and .md (bench/results/local/ unless --update-results or --out <dir>);
 * exits 1 when a drill fails.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { freePort } from "../test/support/ports";
import {
  agentFor,
  completed,
  getJson,
  type StreamOptions,
  type StreamResult,
  streamRequest,
  type Target,
} from "./lib/client";
import { cleanupAll, installCleanupHandlers, onCleanup, runMain, sleep } from "./lib/procs";
import { resultsDir } from "./lib/results-dir";
import {
  gatewayVars,
  machineInfo,
  mintTokens,
  ROOT,
  type Stack,
  SUPABASE_JWT_SECRET,
  startStack,
  supabaseToken,
} from "./lib/stack";
import { round, summarize, table } from "./lib/stats";
import { startWranglerDev, type WranglerDev } from "./lib/wrangler";

installCleanupHandlers();

const argv = process.argv.slice(2);
const OUT_DIR = resultsDir(argv, ROOT);
const RUN = Date.now().toString(36);
const T0 = Date.now();
const LIMITS_TIMEOUT_MS = 1_000;
const IDLE_TIMEOUT_MS = 1_500;
const log = (msg: string) =>
  console.log(`[drills +${((Date.now() - T0) / 1000).toFixed(1)}s] ${msg}`);
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

interface Check {
  drill: string;
  expected: string;
  observed: string;
  passed: boolean;
}
const checks: Check[] = [];
function check(drill: string, expected: string, observed: string, passed: boolean): void {
  checks.push({ drill, expected, observed, passed });
  console.log(`${passed ? "PASS" : "FAIL"}  ${drill}: ${observed}`);
}

const describe = (r: StreamResult) =>
  r.failure
    ? `no answer (${r.failure})`
    : `${r.status}${r.errorCode ? ` ${r.errorCode}` : ""}${r.status === 200 ? `, ${r.tokens} tokens, ${r.terminal ?? "no terminal event"}` : ""}`;

// ---------------------------------------------------------------------------------------------

/** Drill 1: redis-server killed and restarted under a steady trickle of streams. */
async function redisDrill(stack: Stack, dev: WranglerDev, tokens: string[]): Promise<void> {
  const t: Target = { name: "up", kind: "worker", url: dev.url, agent: agentFor(16) };
  const pidBefore = dev.workerPid();
  const ledgerFailures: string[] = [];
  const off = dev.onLine((line) => {
    if (line.event === "ledger_write_failed") ledgerFailures.push(String(line.stream_id ?? ""));
  });
  interface Sample {
    at: number;
    ms: number;
    r: StreamResult;
  }
  const samples: Sample[] = [];
  let running = true;
  const start = nowMs();
  let k = 0;
  const load = Promise.all(
    Array.from({ length: 4 }, async () => {
      while (running && nowMs() - start < 20_000) {
        const i = k++;
        const at = nowMs() - start;
        const r = await streamRequest(t, {
          message: "Steady [[fake tokens=10 delay=20]]",
          token: tokens[i % tokens.length],
          ip: `198.19.50.${(i % 50) + 1}`,
          timeoutMs: 15_000,
        });
        samples.push({ at, ms: r.headersMs ?? r.endMs ?? Number.NaN, r });
        if (r.status !== 200) await sleep(50);
      }
    }),
  );
  await sleep(2_000);
  const killedAt = nowMs() - start;
  await stack.redis.kill();
  log("redis-server killed (SIGKILL)");
  // While it is down, minting a session must fail closed too.
  const mint = await getJson<{ error_code?: string }>(`${dev.url}/api/v1/anon_session`, {
    method: "POST",
    headers: { "content-type": "application/json", "cf-connecting-ip": "198.19.51.1" },
  });
  await sleep(3_000);
  const restartAt = nowMs() - start;
  await stack.redis.restart();
  const restartedAt = nowMs() - start;
  log("redis-server restarted on the same port (empty)");
  await sleep(3_000);
  running = false;
  await load;
  off();
  t.agent.destroy();

  const startedDuringOutage = samples.filter((s) => s.at > killedAt + 50 && s.at < restartAt);
  const refused = startedDuringOutage.filter(
    (s) => s.r.status === 503 && s.r.errorCode === "limits_unavailable",
  );
  const other = startedDuringOutage.filter(
    (s) => !(s.r.status === 503 && s.r.errorCode === "limits_unavailable"),
  );
  const slowest = summarize(refused.map((s) => s.ms)).max;
  check(
    "redis killed: streams started while it is down",
    `503 limits_unavailable within LIMITS_TIMEOUT_MS (${LIMITS_TIMEOUT_MS} ms), with Retry-After`,
    `${refused.length} of ${startedDuringOutage.length} were 503 limits_unavailable, slowest answer ${round(slowest, 0)} ms; ` +
      `others: ${other.map((s) => describe(s.r)).join("; ") || "none"}; Retry-After ${refused[0]?.r.headers["retry-after"] ?? "–"}`,
    startedDuringOutage.length > 0 &&
      other.length === 0 &&
      (slowest ?? Number.POSITIVE_INFINITY) <= LIMITS_TIMEOUT_MS &&
      refused.every((s) => Number(s.r.headers["retry-after"]) >= 1),
  );
  check(
    "redis killed: minting an anonymous session",
    "503 limits_unavailable",
    `${mint.status} ${mint.body.error_code ?? ""}`,
    mint.status === 503 && mint.body.error_code === "limits_unavailable",
  );
  const inFlight = samples.filter((s) => s.at < killedAt && s.at + (s.r.endMs ?? 0) > killedAt);
  check(
    "redis killed: streams already running",
    "finish normally (limits were passed before); their ledger writes fail and are logged with the record for replay",
    `${inFlight.filter((s) => completed(s.r)).length} of ${inFlight.length} completed; ledger_write_failed lines: ${ledgerFailures.length}`,
    inFlight.every((s) => completed(s.r)),
  );
  const after = samples.filter((s) => s.at >= restartedAt);
  const firstOk = after.find((s) => completed(s.r));
  const afterFirst = firstOk ? after.filter((s) => s.at >= firstOk.at) : [];
  check(
    "redis restarted: recovery",
    "streams again without restarting the Worker (same workerd process)",
    `first completed stream ${firstOk ? `${round(firstOk.at - restartedAt, 0)} ms` : "never"} after redis answered again; ` +
      `${afterFirst.filter((s) => completed(s.r)).length} of ${afterFirst.length} after it completed; workerd pid ${pidBefore} → ${dev.workerPid()}`,
    firstOk !== undefined &&
      afterFirst.every((s) => completed(s.r)) &&
      pidBefore !== undefined &&
      pidBefore === dev.workerPid(),
  );
}

/** Drill 2: the store hangs (the local server never answers): 503 at LIMITS_TIMEOUT_MS. */
async function hangDrill(stack: Stack, dev: WranglerDev, scope: string, token: string) {
  const t: Target = { name: "up", kind: "worker", url: dev.url, agent: agentFor(4) };
  const fault = (mode: string) =>
    getJson(`${stack.upstashUrl}/__test/fault`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ mode, scope }),
    });
  await fault("hang");
  const r = await streamRequest(t, {
    message: "Hang [[fake tokens=3]]",
    token,
    ip: "198.19.52.1",
    timeoutMs: 10_000,
  });
  await fault("none");
  const back = await streamRequest(t, {
    message: "Back [[fake tokens=3]]",
    token,
    ip: "198.19.52.1",
    timeoutMs: 10_000,
  });
  t.agent.destroy();
  const ms = r.headersMs ?? Number.NaN;
  check(
    "store hangs",
    `503 limits_unavailable once LIMITS_TIMEOUT_MS (${LIMITS_TIMEOUT_MS} ms) has passed, not much later; then streams again`,
    `${describe(r)} after ${round(ms, 0)} ms; after the fault: ${describe(back)}`,
    r.status === 503 &&
      r.errorCode === "limits_unavailable" &&
      ms >= LIMITS_TIMEOUT_MS * 0.9 &&
      ms <= LIMITS_TIMEOUT_MS + 500 &&
      completed(back),
  );
}

/** Drill 3: the upstream slow, failing, cut, malformed and hanging. */
async function upstreamDrills(dev: WranglerDev, tokens: string[]) {
  const t: Target = { name: "do", kind: "worker", url: dev.url, agent: agentFor(8) };
  let n = 0;
  const token = () => tokens[n++ % tokens.length] as string;
  const usage = async (tk: string) =>
    (
      await getJson<{ quota: { total: { remaining: number } } }>(`${dev.url}/api/v1/usage`, {
        headers: { authorization: `Bearer ${tk}`, "cf-connecting-ip": "198.19.53.1" },
      })
    ).body.quota.total.remaining;
  const run = (directive: string, tk: string, extra: Partial<StreamOptions> = {}) =>
    streamRequest(t, {
      message: `Drill [[fake ${directive}]]`,
      token: tk,
      ip: "198.19.53.1",
      timeoutMs: 15_000,
      ...extra,
    });

  {
    const r = await run("tokens=5 firstDelay=1200", token());
    check(
      "upstream slow to its first token (1.2 s)",
      "200; heartbeats while waiting; done with finish_reason stop",
      `${describe(r)}; first token after ${round(r.firstTokenMs, 0)} ms; ${r.heartbeats} heartbeats`,
      completed(r) && r.tokens === 5 && r.heartbeats >= 1,
    );
  }
  {
    const r = await run("tokens=6 delay=400", token());
    check(
      "upstream slow between tokens (0.4 s each)",
      "200 and every token, done",
      `${describe(r)} in ${round(r.endMs, 0)} ms`,
      completed(r) && r.tokens === 6,
    );
  }
  {
    const tk = token();
    const before = await usage(tk);
    const r = await run("status=500", tk);
    await sleep(300);
    const afterQuota = await usage(tk);
    check(
      "upstream answers 500",
      "502 upstream_error, its words not passed on, the anonymous quota given back",
      `${describe(r)}; quota left ${before} → ${afterQuota}`,
      r.status === 502 && r.errorCode === "upstream_error" && afterQuota === before,
    );
  }
  {
    const r = await run("status=429 retryAfter=7", token());
    check(
      "upstream answers 429",
      "503 upstream_busy with its Retry-After",
      `${describe(r)}; Retry-After ${r.headers["retry-after"] ?? "–"}`,
      r.status === 503 && r.errorCode === "upstream_busy" && r.headers["retry-after"] === "7",
    );
  }
  {
    const r = await run("tokens=10 cut=4 linger=50", token());
    check(
      "upstream connection cut after 4 tokens",
      "200, the 4 tokens, then one error frame upstream_error",
      describe(r),
      r.status === 200 &&
        r.tokens === 4 &&
        r.terminal === "error" &&
        r.errorCode === "upstream_error",
    );
  }
  {
    const r = await run("tokens=10 bad=3", token());
    check(
      "upstream sends a malformed chunk as token 4",
      "200, the 3 tokens before it, then one error frame upstream_error",
      describe(r),
      r.status === 200 && r.tokens === 3 && r.terminal === "error",
    );
  }
  {
    const tk = token();
    const before = await usage(tk);
    const start = nowMs();
    const r = await run("tokens=5 hang=0", tk);
    const took = nowMs() - start;
    await sleep(300);
    const afterQuota = await usage(tk);
    check(
      `upstream hangs before its first token (UPSTREAM_IDLE_TIMEOUT_MS ${IDLE_TIMEOUT_MS})`,
      "200 then one error frame after the idle timeout; the quota given back",
      `${describe(r)} after ${round(took, 0)} ms; quota left ${before} → ${afterQuota}`,
      r.status === 200 &&
        r.terminal === "error" &&
        took >= IDLE_TIMEOUT_MS * 0.9 &&
        took <= IDLE_TIMEOUT_MS + 1_500 &&
        afterQuota === before,
    );
  }
  {
    const start = nowMs();
    const r = await run("tokens=10 hang=3", token());
    const took = nowMs() - start;
    check(
      "upstream hangs after 3 tokens",
      "200, the 3 tokens, one error frame after the idle timeout",
      `${describe(r)} after ${round(took, 0)} ms`,
      r.status === 200 &&
        r.tokens === 3 &&
        r.terminal === "error" &&
        took <= IDLE_TIMEOUT_MS + 2_500,
    );
  }
  t.agent.destroy();
}

/** Drill 4: the JWKS server is down when the Worker starts cold. */
async function jwksDrill(stack: Stack) {
  const port = await freePort();
  const supabaseUrl = `http://127.0.0.1:${port}`;
  const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
  const kid = `drill-${RUN}`;
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" };
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: `${supabaseUrl}/auth/v1`,
    aud: "authenticated",
    role: "authenticated",
    iat: now,
    exp: now + 3600,
  };
  const es256 = await new SignJWT({ ...claims, sub: crypto.randomUUID() })
    .setProtectedHeader({ alg: "ES256", typ: "JWT", kid })
    .sign(privateKey);
  const hs256 = await supabaseToken(SUPABASE_JWT_SECRET, { ...claims, sub: crypto.randomUUID() });

  log("starting a gateway cold, with its JWKS address unreachable");
  const dev = await startWranglerDev({
    name: "drill-jwks",
    root: ROOT,
    vars: gatewayVars(stack, {
      prefix: `dr${RUN}j`,
      extra: { SUPABASE_URL: supabaseUrl },
    }),
  });
  const t: Target = { name: "jwks", kind: "worker", url: dev.url, agent: agentFor(4) };
  const run = (token: string) =>
    streamRequest(t, {
      message: "Who am I [[fake tokens=3]]",
      token,
      ip: "198.19.54.1",
      timeoutMs: 15_000,
    });
  const first = await run(es256);
  const [anon] = await mintTokens(dev.url, 1, "198.19.54.2");
  const hs = await run(hs256);
  const an = await run(anon as string);
  const again = await run(es256);
  check(
    "JWKS down on a cold start: ES256 token",
    "401 unauthorized (never 500), quickly",
    `${describe(first)} in ${round(first.endMs, 0)} ms; again: ${describe(again)} in ${round(again.endMs, 0)} ms`,
    first.status === 401 &&
      again.status === 401 &&
      (first.endMs ?? Number.POSITIVE_INFINITY) < 4_000,
  );
  check(
    "JWKS down on a cold start: HS256 Supabase token",
    "200, streams",
    describe(hs),
    completed(hs),
  );
  check("JWKS down on a cold start: anonymous token", "200, streams", describe(an), completed(an));

  // Bring the JWKS up on that address: no key was ever fetched, so the next ES256 token fetches.
  const body = JSON.stringify({ keys: [jwk] });
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  onCleanup(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  // While no key was ever fetched, a failed fetch is not retried for JWKS_FAILURE_BACKOFF_MS (5 s).
  const upAt = nowMs();
  let recovered = await run(es256);
  while (!completed(recovered) && nowMs() - upAt < 10_000) {
    await sleep(500);
    recovered = await run(es256);
  }
  check(
    "JWKS back: ES256 token, same Worker",
    "200 once the failure back-off (5 s) has passed, without a restart",
    `${describe(recovered)}, ${round((nowMs() - upAt) / 1000, 1)} s after the JWKS answered`,
    completed(recovered),
  );
  t.agent.destroy();
}

async function main() {
  const machine = await machineInfo();
  const stack = await startStack();
  const scope = `drills-${RUN}`;
  log(
    "starting the gateways: Upstash store (store drills), Durable Object store (upstream drills)",
  );
  const [up, dobj] = await Promise.all([
    startWranglerDev({
      name: "drill-upstash",
      root: ROOT,
      vars: gatewayVars(stack, {
        prefix: `dr${RUN}u`,
        scope,
        extra: { LIMITS_TIMEOUT_MS: String(LIMITS_TIMEOUT_MS) },
      }),
    }),
    startWranglerDev({
      name: "drill-do",
      root: ROOT,
      vars: gatewayVars(stack, {
        prefix: `dr${RUN}d`,
        extra: {
          UPSTREAM_IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS),
          HEARTBEAT_INTERVAL_MS: "500",
        },
      }),
    }),
  ]);
  const upTokens = await mintTokens(up.url, 8, "198.19.49.1");
  const doTokens = await mintTokens(dobj.url, 8, "198.19.49.1");

  log("drill 1: redis-server killed and restarted mid-run");
  await redisDrill(stack, up, upTokens);
  log("drill 2: the store hangs");
  await hangDrill(stack, up, scope, upTokens[0] as string);
  log("drill 3: the upstream slow, failing, hanging");
  await upstreamDrills(dobj, doTokens);
  log("drill 4: the JWKS server down on a cold start");
  await jwksDrill(stack);
  await cleanupAll();

  const passed = checks.every((c) => c.passed);
  const results = {
    generated_at: new Date().toISOString(),
    duration_s: Math.round((Date.now() - T0) / 1000),
    machine,
    runtime: "wrangler dev",
    checks,
    passed,
  };
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(join(OUT_DIR, "drills-latest.json"), `${JSON.stringify(results, null, 2)}\n`);
  const md = [
    `# Fault drills, ${results.generated_at.slice(0, 16).replace("T", " ")} UTC`,
    "",
    `Under \`wrangler dev\`, on ${machine.cpu} × ${machine.cores}; took ${results.duration_s} s. \`npm run drills\`; the critical ones also run as tests (test/limits/redis-restart.test.ts, test/auth/jwks-outage.test.ts).`,
    "",
    table(
      ["drill", "expected", "observed", "passed"],
      checks.map((c) => [c.drill, c.expected, c.observed, c.passed ? "yes" : "**no**"]),
    ),
    "",
  ].join("\n");
  writeFileSync(join(OUT_DIR, "drills-latest.md"), md);
  console.log(`\n${md}`);
  if (!passed) process.exitCode = 1;
}

runMain(main);
