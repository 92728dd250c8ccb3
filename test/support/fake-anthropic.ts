/**
 * @module A fake Anthropic Messages API on loopback that replays recorded streams byte for byte
 * (test/fixtures/anthropic, sources in its README). The last user message chooses:
 * `[[anthropic id=a1 rec=basic status=529 cut=1 delay=10]]`. rec: `basic`, `max-tokens`,
 * `thinking`, `tool-use` (text, then a `tool_use` block streamed as `input_json_delta`), or `error` (the first events of `basic`, then the documentation's
 * `overloaded_error` event); status: answer this status with Anthropic's error body instead;
 * cut=N: destroy the socket after N events; delay: ms between events. GET
 * /__test/requests/<id> returns what the request carried (key, version, body).
 */
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { AnthropicRecord } from "./anthropic-record";

const FIXTURES = join(import.meta.dirname, "..", "fixtures", "anthropic");

/** The recordings as lists of SSE events (each with its own trailing blank line). */
function recordings(): Record<string, string[]> {
  const sse = (file: string) =>
    readFileSync(join(FIXTURES, file), "utf8")
      .split(/\n\n(?=event:)/)
      // The last event of a recording file may lack its blank line; the API sends one.
      .map((e) => (e.endsWith("\n\n") ? e : `${e.replace(/\n*$/, "")}\n\n`));
  const jsonl = (file: string) =>
    readFileSync(join(FIXTURES, file), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((line) => `event: ${(JSON.parse(line) as { type: string }).type}\ndata: ${line}\n\n`);
  const thinking = jsonl("thinking.jsonl");
  const basic = sse("basic.sse");
  return {
    basic,
    "max-tokens": sse("max-tokens.sse"),
    thinking,
    "tool-use": jsonl("tool-use.jsonl"),
    error: [...basic.slice(0, 5), readFileSync(join(FIXTURES, "error-event.sse"), "utf8")],
  };
}

export interface FakeAnthropic {
  url: string;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  return JSON.parse(Buffer.concat(parts).toString("utf8")) as Record<string, unknown>;
}

function directive(body: Record<string, unknown>): Record<string, string> {
  const messages = (body.messages as { content: unknown }[] | undefined) ?? [];
  // The last message's content, blocks too (a tool_result may carry the next directive).
  const last = messages.at(-1)?.content;
  const m = /\[\[anthropic([^\]]*)\]\]/.exec(
    typeof last === "string" ? last : JSON.stringify(last ?? ""),
  );
  const d: Record<string, string> = {};
  for (const pair of (m?.[1] ?? "").trim().split(/\s+/)) {
    const [k, v = ""] = pair.split("=");
    if (k) d[k] = v;
  }
  return d;
}

async function answer(
  req: IncomingMessage,
  res: ServerResponse,
  streams: Record<string, string[]>,
  seen: Map<string, AnthropicRecord>,
): Promise<void> {
  const body = await readJson(req);
  const d = directive(body);
  const header = (name: string) => {
    const v = req.headers[name];
    return typeof v === "string" ? v : null;
  };
  if (d.id) {
    seen.set(d.id, {
      apiKey: header("x-api-key"),
      version: header("anthropic-version"),
      body,
    });
  }
  const status = Number(d.status ?? 200);
  if (status !== 200) {
    res.writeHead(status, { "content-type": "application/json" });
    const type = status === 529 ? "overloaded_error" : "api_error";
    res.end(JSON.stringify({ type: "error", error: { type, message: "Overloaded" } }));
    return;
  }
  const events = streams[d.rec ?? "basic"] ?? [];
  res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8" });
  const cut = d.cut === undefined ? -1 : Number(d.cut);
  for (const [i, event] of events.entries()) {
    if (i === cut) {
      await sleep(20);
      res.socket?.destroy();
      return;
    }
    if (d.delay) await sleep(Number(d.delay));
    res.write(event);
  }
  res.end();
}

/** Starts the fake on a free loopback port. */
export async function startFakeAnthropic(): Promise<FakeAnthropic> {
  const streams = recordings();
  const seen = new Map<string, AnthropicRecord>();
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (req.method === "POST" && url.pathname === "/v1/messages") {
      answer(req, res, streams, seen).catch(() => res.destroy());
      return;
    }
    const rec = /^\/__test\/requests\/([\w-]+)$/.exec(url.pathname);
    if (req.method === "GET" && rec?.[1]) {
      const found = seen.get(rec[1]);
      res.writeHead(found ? 200 : 404, { "content-type": "application/json" });
      res.end(JSON.stringify(found ?? null));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
