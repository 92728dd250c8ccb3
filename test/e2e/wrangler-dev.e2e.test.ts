/**
 * @module Against a real `wrangler dev`: the Prometheus text passes `promtool check metrics`; a
 * 413 on an over-long chunked body does not break the next request ("503 Your worker restarted
 * mid-request"), also for a body that never ends; `npm run dev -- --port N` listens on N; the
 * generated types (npm run types, CI's check) do not depend on a local .dev.vars.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../support/ports";
import { OFFLINE_WRANGLER_ENV } from "../support/wrangler-dev";
import { type DevServer, ROOT, startWranglerDev } from "./dev-server";

const METRICS_TOKEN = "metrics-token-for-the-e2e-tests-0123456789";
let server: DevServer;

beforeAll(async () => {
  server = await startWranglerDev({ METRICS_TOKEN, METRICS_FLUSH_MS: "0" });
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

async function anonToken(): Promise<string> {
  const res = await fetch(`${server.url}/api/v1/anon_session`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
}

/** A chunked body (no Content-Length) of `total` bytes, or one that never ends. */
function chunkedBody(total: number | "endless"): ReadableStream<Uint8Array> {
  const chunk = new TextEncoder().encode(`{"message":"${"x".repeat(16 * 1024)}`);
  let sent = 0;
  return new ReadableStream({
    async pull(controller) {
      // A macrotask per chunk: an endless body must not starve the test's own timers.
      await new Promise((resolve) => setImmediate(resolve));
      if (total !== "endless" && sent >= total) return controller.close();
      controller.enqueue(chunk);
      sent += chunk.byteLength;
    },
  });
}

/**
 * POSTs a chunked body that never ends over a raw socket, reading the answer while it writes,
 * as a browser or curl does (fetch gives up on the answer when a write fails), and resolves
 * with the status line's code once it has arrived.
 */
function postEndless(token: string): Promise<number> {
  const url = new URL(`${server.url}/api/v1/stream`);
  const chunk = `4000\r\n${"x".repeat(0x4000)}\r\n`;
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    let answer = "";
    let done = false;
    const finish = (code: number | Error) => {
      if (done) return;
      done = true;
      socket.destroy();
      code instanceof Error ? reject(code) : resolve(code);
    };
    socket.on("data", (data) => {
      answer += data.toString("latin1");
      const status = /^HTTP\/1\.1 (\d{3})/.exec(answer);
      if (status) finish(Number(status[1]));
    });
    socket.on("error", (e) => finish(e));
    socket.on("close", () => finish(new Error(`closed without an answer: ${answer}`)));
    socket.write(
      `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${token}\r\n` +
        'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"m"\r\n',
    );
    // Writes as fast as the connection takes it, as curl does.
    const pump = () => {
      if (done) return;
      if (socket.write(chunk)) setImmediate(pump);
      else socket.once("drain", pump);
    };
    pump();
  });
}

async function postStream(token: string, body: ReadableStream<Uint8Array>, signal?: AbortSignal) {
  return fetch(`${server.url}/api/v1/stream`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body,
    duplex: "half",
    signal,
  } as RequestInit);
}

describe("under wrangler dev", () => {
  it("serves Prometheus text that promtool check metrics accepts", async () => {
    const token = await anonToken();
    const streamed = await fetch(`${server.url}/api/v1/stream?message=hello`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(streamed.status).toBe(200);
    await streamed.text();
    expect((await fetch(`${server.url}/api/v1/usage`)).status).toBe(401);
    const res = await fetch(`${server.url}/api/v1/metrics`, {
      headers: { Authorization: `Bearer ${METRICS_TOKEN}`, Accept: "text/plain" },
    });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain("magicbox_streams_started");
    const check = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
    expect(check.error, "promtool is missing: apt-get install -y prometheus").toBeUndefined();
    expect(`${check.stdout}${check.stderr}`).toBe("");
    expect(check.status).toBe(0);
  });

  it("answers the request after a 413 on an over-long chunked body, three times in a row", async () => {
    const token = await anonToken();
    for (let i = 0; i < 3; i++) {
      const refused = await postStream(token, chunkedBody(200 * 1024));
      expect(refused.status).toBe(413);
      expect(((await refused.json()) as { error_code: string }).error_code).toBe(
        "payload_too_large",
      );
      const next = await fetch(`${server.url}/api/v1/usage`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      expect(next.status, await next.clone().text()).toBe(200);
    }
  });

  it("answers 413 to a chunked body that never ends, and the next request still works, ten times in a row", async () => {
    // Answering only after the drain, and closing on the unread rest, reset the connection
    // under the 413 now and then (ECONNRESET here, or the proxy's 503): ten in a row failed 3
    // runs of 3 that way; with the lingering 413 they pass.
    const token = await anonToken();
    for (let i = 0; i < 10; i++) {
      expect(await postEndless(token)).toBe(413);
      const next = await fetch(`${server.url}/api/v1/usage`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      expect(next.status, await next.clone().text()).toBe(200);
    }
  });
});

describe("npm run dev", () => {
  let child: ChildProcess | undefined;
  let persist: string | undefined;

  afterAll(async () => {
    if (child?.pid !== undefined) {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    if (persist) await rm(persist, { recursive: true, force: true });
  });

  it("takes another port: npm run dev -- --port N", async () => {
    const [port, inspector] = [await freePort(), await freePort()];
    persist = await mkdtemp(join(tmpdir(), "magic-dev-port-"));
    const args = ["run", "dev", "--", "--port", String(port)];
    args.push("--inspector-port", String(inspector), "--persist-to", persist);
    child = spawn("npm", args, {
      cwd: ROOT,
      env: { ...process.env, ...OFFLINE_WRANGLER_ENV },
      detached: true,
      stdio: "pipe",
    });
    let output = "";
    child.stdout?.on("data", (d) => {
      output += String(d);
    });
    child.stderr?.on("data", (d) => {
      output += String(d);
    });
    let status = 0;
    for (let i = 0; i < 200 && status !== 200 && child.exitCode === null; i++) {
      status = await fetch(`http://127.0.0.1:${port}/healthz`).then(
        (r) => r.status,
        () => 0,
      );
      if (status !== 200) await new Promise((r) => setTimeout(r, 150));
    }
    expect(status, output.slice(-1500)).toBe(200);
  }, 45_000);
});

describe("generated types", () => {
  it("are the same, and CI's check passes, with a local .dev.vars full of secrets", async () => {
    // A copy of the project's config next to a .dev.vars of its own (the real one is left alone).
    const dir = await mkdtemp(join(tmpdir(), "magic-types-"));
    try {
      await mkdir(join(dir, ".ci"));
      for (const f of [
        "wrangler.toml",
        "package.json",
        "worker-configuration.d.ts",
        ".ci/check-types",
      ]) {
        await copyFile(join(ROOT, f), join(dir, f));
      }
      // Everything wrangler.toml refers to: the worker, its assets, the [build] script and its sources, migrations.
      for (const d of ["src", "public", "node_modules", "scripts", "web", "migrations"])
        await symlink(join(ROOT, d), join(dir, d));
      await writeFile(join(dir, ".dev.vars"), "SECRET_KEY=local\nMY_LOCAL_SECRET=hunter2\n");
      const env = { ...process.env, ...OFFLINE_WRANGLER_ENV };
      const check = spawnSync("bash", [".ci/check-types"], { cwd: dir, env, encoding: "utf8" });
      expect(check.status, `${check.stdout}${check.stderr}`).toBe(0);
      const types = spawnSync("npm", ["run", "types"], { cwd: dir, env, encoding: "utf8" });
      expect(types.status, types.stderr).toBe(0);
      const generated = await readFile(join(dir, "worker-configuration.d.ts"), "utf8");
      expect(generated).not.toContain("MY_LOCAL_SECRET");
      expect(generated).toBe(await readFile(join(ROOT, "worker-configuration.d.ts"), "utf8"));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
