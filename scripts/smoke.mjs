#!/usr/bin/env node
/**
 * @module Post-deploy smoke test: mints a session, streams, reads usage, checks the limit and
 * security headers and (with ADMIN_TOKEN) that the stream reached the ledger; says what failed.
 * Usage: npm run smoke -- <base-url> [--token <bearer>] [--ledger-timeout <s>]
 * Env: ADMIN_TOKEN (optional: also checks the operator API and the ledger record).
 */
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    token: { type: "string" },
    "ledger-timeout": { type: "string", default: "30" },
    quiet: { type: "boolean", default: false },
  },
});
const base = positionals[0]?.replace(/\/+$/, "");
if (!base || !/^https?:\/\//.test(base)) {
  console.error("usage: npm run smoke -- <base-url, e.g. https://gateway.example.com>");
  process.exit(2);
}

const results = [];
/** Records one check; `detail` says plainly what was wrong. */
function check(name, ok, detail = "") {
  results.push({ name, ok, detail });
  if (!values.quiet)
    console.log(`${ok ? "ok  " : "FAIL"} ${name}${ok || !detail ? "" : `: ${detail}`}`);
  return ok;
}

async function request(path, init = {}) {
  try {
    return await fetch(`${base}${path}`, { ...init, signal: AbortSignal.timeout(30_000) });
  } catch (e) {
    return { error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
}

const SECURITY_HEADERS = {
  "x-content-type-options": /^nosniff$/i,
  "referrer-policy": /\S/,
  "x-frame-options": /^(DENY|SAMEORIGIN)$/i,
  "cross-origin-opener-policy": /\S/,
};

function securityHeaders(name, res, page) {
  const missing = Object.entries(SECURITY_HEADERS)
    .filter(([h, re]) => !re.test(res.headers.get(h) ?? ""))
    .map(([h]) => h);
  const csp = res.headers.get("content-security-policy") ?? "";
  if (page) {
    if (!/script-src 'self'/.test(csp)) missing.push("content-security-policy script-src 'self'");
    if (/unsafe-inline|unsafe-eval/.test(csp)) missing.push("a CSP without unsafe-inline/eval");
  }
  if (base.startsWith("https:") && !res.headers.get("strict-transport-security")) {
    missing.push("strict-transport-security");
  }
  return check(
    `security headers on ${name}`,
    missing.length === 0,
    `missing or wrong: ${missing.join(", ")}`,
  );
}

async function main() {
  const health = await request("/healthz");
  if (health.error) {
    check("GET /healthz", false, `cannot reach ${base}: ${health.error}`);
    return;
  }
  const body = await health.json().catch(() => null);
  check(
    "GET /healthz answers 200 {status: ok}",
    health.status === 200 && body?.status === "ok",
    `status ${health.status}, body ${JSON.stringify(body)}`,
  );
  securityHeaders("/healthz", health, false);

  const page = await request("/magic/");
  if (!page.error) {
    check(
      "GET /magic/ serves the page",
      page.status === 200 && /text\/html/.test(page.headers.get("content-type") ?? ""),
      `status ${page.status}, type ${page.headers.get("content-type")}`,
    );
    securityHeaders("/magic/", page, true);
  }

  let token = values.token;
  if (!token) {
    const mint = await request("/api/v1/anon_session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    const minted = mint.error ? null : await mint.json().catch(() => null);
    const ok = !mint.error && mint.status === 200 && typeof minted?.token === "string";
    let why = mint.error ?? `status ${mint.status}, ${JSON.stringify(minted)}`;
    if (minted?.error_code === "misconfigured")
      why += " (a secret is missing: see the deploy guide)";
    if (minted?.error_code === "challenge_failed")
      why += " (Turnstile is on: pass --token <bearer>)";
    if (!check("POST /api/v1/anon_session mints a token", ok, why)) return;
    token = minted.token;
  }
  const auth = { Authorization: `Bearer ${token}` };

  const stream = await request("/api/v1/stream", {
    method: "POST",
    headers: { ...auth, "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify({ message: "Reply with the single word: ok", cost_cap_usd: 0.001 }),
  });
  if (stream.error) {
    check("POST /api/v1/stream", false, stream.error);
    return;
  }
  const type = stream.headers.get("content-type") ?? "";
  const text = await stream.text();
  if (
    !check(
      "POST /api/v1/stream answers 200 text/event-stream",
      stream.status === 200 && type.startsWith("text/event-stream"),
      `status ${stream.status}, type ${type}, body ${text.slice(0, 300)}`,
    )
  )
    return;
  const missingLimit = ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"].filter(
    (h) => !/^\d+$/.test(stream.headers.get(h) ?? ""),
  );
  check(
    "the stream carries the RateLimit-* headers",
    missingLimit.length === 0,
    `missing: ${missingLimit.join(", ")}`,
  );
  check(
    "the stream carries X-Stream-Id and Cache-Control: no-store",
    Boolean(stream.headers.get("x-stream-id")) &&
      stream.headers.get("cache-control") === "no-store",
    `X-Stream-Id ${stream.headers.get("x-stream-id")}, Cache-Control ${stream.headers.get("cache-control")}`,
  );
  const events = text
    .split(/\r?\n\r?\n/)
    .filter((f) => f.trim())
    .map((f) => {
      const field = (n) =>
        f
          .split(/\r?\n/)
          .find((l) => l.startsWith(`${n}:`))
          ?.slice(n.length + 1)
          .trim();
      let data = null;
      try {
        data = JSON.parse(field("data") ?? "");
      } catch {}
      return { id: field("id"), event: field("event"), data };
    });
  const terminal = events.filter((e) => e.event === "done" || e.event === "error");
  const done = events.find((e) => e.event === "done")?.data;
  const idsOk = events.every((e, i) => e.id === String(i + 1) && e.data !== null);
  check(
    "the stream ends with exactly one done event, ids 1..n",
    terminal.length === 1 && Boolean(done) && idsOk,
    terminal.length === 1 && terminal[0]?.event === "error"
      ? `the stream failed: ${JSON.stringify(terminal[0].data)}`
      : `${events.length} events, ${terminal.length} terminal, ids in order: ${idsOk}`,
  );
  securityHeaders("/api/v1/stream", stream, false);

  const usage = await request("/api/v1/usage", { headers: auth });
  const u = usage.error ? null : await usage.json().catch(() => null);
  check(
    "GET /api/v1/usage shows the stream's spend",
    !usage.error && usage.status === 200 && u?.spend?.streams >= 1,
    usage.error ?? `status ${usage.status}, ${JSON.stringify(u)?.slice(0, 300)}`,
  );

  const adminToken = process.env.ADMIN_TOKEN;
  if (!adminToken) {
    console.log("skip the ledger check (set ADMIN_TOKEN to check that the record reached D1)");
    return;
  }
  if (!done || !u?.user_id) return;
  const user = encodeURIComponent(`anonymous:${u.user_id}`);
  const deadline = Date.now() + Number(values["ledger-timeout"]) * 1000;
  let found = null;
  let last = "";
  while (!found && Date.now() < deadline) {
    const res = await request(`/api/v1/admin/ledger?user=${user}`, {
      headers: { Authorization: `Bearer ${adminToken}` },
    });
    if (res.error || res.status !== 200) {
      last = res.error ?? `status ${res.status} ${await res.text()}`;
      if (res.status === 401 || res.status === 404) break;
    } else {
      found = (await res.json()).records?.find((r) => r.stream_id === done.stream_id) ?? null;
    }
    if (!found) await new Promise((r) => setTimeout(r, 500));
  }
  check(
    "the stream's record reached the ledger (queue -> D1)",
    Boolean(found) && found.cost_micro_usd === Math.round(done.cost_usd * 1e6),
    found
      ? `ledger says ${found.cost_usd}, the stream said ${done.cost_usd}`
      : last || `not there after ${values["ledger-timeout"]} s (is the queue consumer set up?)`,
  );
}

await main();
const failed = results.filter((r) => !r.ok);
console.log(
  failed.length
    ? `\n${failed.length} of ${results.length} checks failed against ${base}`
    : `\nall ${results.length} checks passed against ${base}`,
);
process.exit(failed.length ? 1 : 0);
