/**
 * @module `npm run smoke` and `npm run ledger:replay` against `wrangler dev` (with the local D1
 * and Queue): the smoke test passes, says plainly what failed, and a replay writes a record once.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevServer, ROOT, startWranglerDev } from "./dev-server";

const ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef-0123";
let dev: DevServer;
let dir: string;

/** Runs a script of scripts/ with Node; resolves with its exit code and output (never throws). */
function run(script: string, args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number; out: string }>((resolve) => {
    execFile(
      process.execPath,
      [join(ROOT, "scripts", script), ...args],
      { env: { ...process.env, ...env }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        resolve({ code, out: `${stdout}${stderr}` });
      },
    );
  });
}

beforeAll(async () => {
  dev = await startWranglerDev({ ADMIN_TOKEN });
  dir = await mkdtemp(join(tmpdir(), "magic-replay-"));
});

afterAll(async () => {
  await dev?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("npm run smoke", () => {
  it("passes against wrangler dev, including the record in the ledger", async () => {
    const { code, out } = await run("smoke.mjs", [dev.url], { ADMIN_TOKEN });
    expect(out).toContain("ok   the stream's record reached the ledger (queue -> D1)");
    expect(out).toMatch(/all \d+ checks passed/);
    expect(code).toBe(0);
  });

  it("fails with a plain reason when the operator token is wrong", async () => {
    const { code, out } = await run("smoke.mjs", [dev.url, "--ledger-timeout", "2"], {
      ADMIN_TOKEN: `${ADMIN_TOKEN}-wrong`,
    });
    expect(out).toMatch(/FAIL the stream's record reached the ledger \(queue -> D1\): status 401/);
    expect(out).toMatch(/1 of \d+ checks failed/);
    expect(code).toBe(1);
  });

  it("fails when nothing answers, naming the address", async () => {
    const { code, out } = await run("smoke.mjs", ["http://127.0.0.1:9"]);
    expect(out).toContain("FAIL GET /healthz: cannot reach http://127.0.0.1:9");
    expect(code).toBe(1);
  });
});

describe("npm run ledger:replay", () => {
  it("writes the records of ledger_send_failed and ledger_write_failed lines once, however often it runs", async () => {
    const user = `anonymous:anon_${crypto.randomUUID()}`;
    const record = {
      recordId: crypto.randomUUID(),
      streamId: "replayed-stream",
      userKey: user,
      model: "gpt-4o-mini",
      provider: "demo",
      inputTokens: 7,
      outputTokens: 9,
      costMicroUsd: 123,
      finishReason: "stop",
      usageSource: "estimated",
      startedAt: Date.now(),
      ttftMs: 3,
      durationMs: 30,
    };
    // A second stream of the same user whose store write failed (its hold counts in full until
    // its record comes): that line's record is replayed too.
    const unsettled = { ...record, recordId: crypto.randomUUID(), costMicroUsd: 77 };
    const lineOf = (event: string, r: object) =>
      JSON.stringify({
        ts: new Date().toISOString(),
        level: "error",
        event,
        replay: JSON.stringify(r),
      });
    const line = lineOf("ledger_send_failed", record);
    // What must not be replayed: a record planted in a field of another event's line (a field
    // may carry what a client sent), and a record id two lines give different contents.
    const planted = { ...record, recordId: crypto.randomUUID(), costMicroUsd: 999_999 };
    const plantedLine = JSON.stringify({
      ts: new Date().toISOString(),
      level: "warn",
      event: "request",
      cause: lineOf("ledger_send_failed", planted),
    });
    const twice = { ...record, recordId: crypto.randomUUID(), costMicroUsd: 5 };
    // A plain log line, the same line wrapped as Workers Logs exports it, the first record's
    // store write failing too (one record, two lines), the second record, and noise.
    const file = join(dir, "worker.log");
    await writeFile(
      file,
      [
        "[wrangler:info] GET /healthz 200 OK",
        line,
        JSON.stringify({ message: line }),
        lineOf("ledger_write_failed", record),
        lineOf("ledger_write_failed", unsettled),
        plantedLine,
        lineOf("ledger_send_failed", twice),
        lineOf("ledger_write_failed", { ...twice, costMicroUsd: 0 }),
        "",
      ].join("\n"),
    );
    const first = await run("ledger-replay.mjs", ["--url", dev.url, file], { ADMIN_TOKEN });
    expect(first.out).toContain(
      `refused record ${twice.recordId}: two lines give it different contents`,
    );
    expect(first.out).toContain("found 2 record(s) to replay");
    expect(first.code).toBe(1);
    expect(first.out).toContain("written 2, already in the ledger 0");
    const second = await run("ledger-replay.mjs", ["--url", dev.url, file], { ADMIN_TOKEN });
    expect(second.out).toContain("written 0, already in the ledger 2");
    const res = await fetch(`${dev.url}/api/v1/admin/ledger?user=${encodeURIComponent(user)}`, {
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    const body = (await res.json()) as { records: { record_id: string; cost_micro_usd: number }[] };
    expect(body.records).toHaveLength(2);
    expect(body.records).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ record_id: record.recordId, cost_micro_usd: 123 }),
        expect.objectContaining({ record_id: unsettled.recordId, cost_micro_usd: 77 }),
      ]),
    );
  });
});
