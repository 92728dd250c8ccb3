/**
 * @module Every example of the README and docs/ that runs against a local worker, run as written
 * (only the address changes: the docs' http://127.0.0.1:8787 or gateway.example.com becomes the
 * test's `wrangler dev`, started with `npm run dev`'s settings from dev.defaults.vars), and its
 * output compared with the one the docs show, where they show one. The examples are found by
 * their markers in whichever file holds them (test/e2e/docs.ts). `npm run dev` itself and the
 * reset block: test/e2e/dev-command.e2e.test.ts; the deploy guide: test/e2e/deploy-guide.e2e.test.ts.
 */
import { execFile } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { transform } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { demoAnswer } from "../../src/stream/providers/demo";
import { OFFLINE_WRANGLER_ENV } from "../support/wrangler-dev";
import { type DevServer, ROOT, startWranglerDev } from "./dev-server";
import { type Doc, markedBlock, readDocs } from "./docs";

const SUPABASE_JWT_SECRET = "readme-examples-legacy-jwt-secret-0123456789";
const ADMIN_TOKEN = "readme-examples-admin-token-0123456789abcdef";
const SCRATCH = join(ROOT, "test/artifacts/readme-examples");

let dev: DevServer;
let docs: Doc[];

/** The fenced block after `<!-- example:<name> -->` (or `example-output:`) in the docs. */
const block = (name: string, kind = "example") => markedBlock(docs, kind, name);

/** The docs' addresses, pointed at the test's worker. */
const local = (code: string) =>
  code
    .replaceAll("http://127.0.0.1:8787", dev.url)
    .replaceAll("https://gateway.example.com", dev.url)
    .replaceAll("https://<gateway>", dev.url);

/** Runs `file args` from the repository root; resolves with its exit code and outputs. */
function run(file: string, args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      file,
      args,
      { cwd: ROOT, env: { ...process.env, ...OFFLINE_WRANGLER_ENV, ...env }, timeout: 60_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** A shell block, as bash runs it, failing on the first failing command. */
const sh = (code: string, env: Record<string, string> = {}) =>
  run("bash", ["-c", `set -euo pipefail\n${local(code)}`], env);

/** A TypeScript block, compiled as it is and run with Node; `gatewayToken` is given. */
async function ts(name: string, gatewayToken: string) {
  const { code } = await transform(local(block(name)), { loader: "ts", format: "esm" });
  // Inside the repository, so the SDKs resolve from its node_modules.
  const file = join(SCRATCH, `${name}.mjs`);
  await writeFile(file, `const gatewayToken = process.env.GATEWAY_TOKEN;\n${code}`);
  return run(process.execPath, [file], { GATEWAY_TOKEN: gatewayToken });
}

/** One SSE event as text: its id, its name, its data parsed. */
interface Event {
  id: string;
  event: string;
  data: Record<string, unknown>;
}
function events(text: string): Event[] {
  return text
    .split(/\n\n+/)
    .map((chunk) => chunk.trim())
    .filter((chunk) => chunk.startsWith("id:"))
    .map((chunk) => {
      const field = (name: string) =>
        chunk
          .split("\n")
          .find((l) => l.startsWith(`${name}: `))
          ?.slice(name.length + 2) ?? "";
      return { id: field("id"), event: field("event"), data: JSON.parse(field("data")) };
    });
}

async function anonToken(): Promise<string> {
  const res = await fetch(`${dev.url}/api/v1/anon_session`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: "{}",
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
}

beforeAll(async () => {
  docs = await readDocs();
  // `npm run dev`'s settings, plus what the signed-in and operator examples ask the reader to set.
  const defaults: Record<string, string> = {};
  for (const line of (await readFile(join(ROOT, "dev.defaults.vars"), "utf8")).split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m?.[1]) defaults[m[1]] = m[2] ?? "";
  }
  dev = await startWranglerDev({ ...defaults, SUPABASE_JWT_SECRET, ADMIN_TOKEN });
  await mkdir(SCRATCH, { recursive: true });
}, 90_000);

afterAll(async () => {
  await dev?.stop();
  await rm(SCRATCH, { recursive: true, force: true });
});

describe("the examples of the README and docs/", () => {
  it("the first stream: an anonymous session and a stream, with the output the README shows", async () => {
    const { code, stdout, stderr } = await sh(block("stream"));
    expect(code, stderr).toBe(0);
    const actual = events(stdout);
    const [head, tail] = block("stream", "example-output").split("\n...\n") as [string, string];
    const shownHead = events(head);
    const [shownDone] = events(tail);
    expect(shownHead.length).toBeGreaterThan(0);
    expect(actual.slice(0, shownHead.length)).toEqual(shownHead);
    const done = actual.at(-1) as Event;
    expect(done.event).toBe("done");
    const { stream_id, ttft_ms, duration_ms } = done.data;
    expect(done).toEqual({
      ...shownDone,
      data: { ...shownDone?.data, stream_id, ttft_ms, duration_ms },
    });
    expect(typeof ttft_ms).toBe("number");
  });

  it("a bad request: the status line and the body the README shows", async () => {
    const lines = block("bad-request").trimEnd().split("\n");
    const command: string[] = [];
    let i = 0;
    for (; i < lines.length; i++) {
      const line = lines[i] as string;
      command.push(i === 0 ? line.replace(/^\$ /, "") : line.trim());
      if (!line.endsWith("\\")) break;
    }
    const shown = lines.slice(i + 1).filter((l) => l.trim() !== "");
    const { code, stdout, stderr } = await sh(command.join("\n"), { TOKEN: await anonToken() });
    expect(code, stderr).toBe(0);
    const got = stdout.replaceAll("\r", "").trimEnd().split("\n");
    expect(got[0]).toBe(shown[0]);
    expect(got.at(-1)).toBe(shown.at(-1));
  });

  it("a conversation: streams to a done", async () => {
    const { code, stdout, stderr } = await sh(block("conversation"), {
      TOKEN: await anonToken(),
    });
    expect(code, stderr).toBe(0);
    const all = events(stdout);
    expect(all.filter((e) => e.event === "error")).toEqual([]);
    expect(all.at(-1)?.data).toMatchObject({ finish_reason: "stop", usage_source: "upstream" });
  });

  it("the model registry: every model docs/api.md lists is what GET /api/v1/models answers", async () => {
    const shown = block("models", "example-output");
    const models = (await (await fetch(`${dev.url}/api/v1/models`)).json()) as {
      default: string;
      models: unknown[];
    };
    expect(shown).toContain(`{"default": "${models.default}"`);
    const listed = shown
      .split("\n")
      .filter((l) => l.trim().startsWith('{"id"'))
      .map((l) => JSON.parse(l.trim().replace(/,( \.\.\.\]\})?$/, "")));
    expect(listed.length).toBeGreaterThanOrEqual(2);
    for (const model of listed) expect(models.models).toContainEqual(model);
  });

  it("the official SDK: streams the answer with an anonymous token", async () => {
    const { code, stdout, stderr } = await ts("openai-sdk", await anonToken());
    expect(code, stderr).toBe(0);
    expect(stdout).toBe(demoAnswer("Say hello").join(""));
  });

  it("the AI SDK: streams, prints usage and generates, all with an anonymous token", async () => {
    const { code, stdout, stderr } = await ts("ai-sdk", await anonToken());
    expect(code, stderr).toBe(0);
    const answer = demoAnswer("Say hello").join("");
    expect(stdout.startsWith(answer)).toBe(true);
    expect(stdout.slice(answer.length)).toMatch(/inputTokens: 17,[\s\S]*outputTokens: \d+/);
  });

  it("a signed-in token locally: npm run token, then a model anonymous callers may not use", async () => {
    const { code, stdout, stderr } = await sh(block("signed-in"), { SUPABASE_JWT_SECRET });
    expect(code, stderr).toBe(0);
    const done = events(stdout).at(-1);
    expect(done?.event).toBe("done");
    expect(done?.data).toMatchObject({ model: "o4-mini", provider: "demo", finish_reason: "stop" });
    expect(done?.data).not.toHaveProperty("quota");
    // The control: the same request with an anonymous token is refused.
    const refused = await sh(block("signed-in").replace(/^TOKEN=.*$/m, ""), {
      TOKEN: await anonToken(),
    });
    expect(refused.stdout).toContain('"error_code":"model_not_allowed"');
  });

  it("the operator's spend in CSV", async () => {
    const { code, stdout, stderr } = await sh(block("admin-spend"), { ADMIN_TOKEN });
    expect(code, stderr).toBe(0);
    expect(stdout.split("\r\n")[0]).toBe(
      "model,streams,input_tokens,output_tokens,cost_usd,cost_micro_usd",
    );
  });
});
