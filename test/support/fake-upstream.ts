/**
 * @module An OpenAI-compatible chat-completions server on loopback whose behaviour is chosen by
 * a directive in the last user message, e.g. `[[fake id=a1 tokens=5 delay=10 usage=0 status=429 cut=3 hang=2 bad=2]]`
 * (every key: test/support/fake-directive.ts). GET /__test/requests/<id> returns what it saw of
 * request `id`; GET /__test/bills?prefix=P the o200k bills (`bill=1`) of ids starting with P.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { billOf, loadO200k } from "./fake-bill";
import { parseDirective } from "./fake-directive";
import type { UpstreamRecord } from "./upstream-record";

export interface FakeUpstream {
  url: string;
  records: Map<string, UpstreamRecord>;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function chunk(content: string | null, finish: string | null, rfield?: string): string {
  let delta: Record<string, unknown> = content === null ? {} : { content };
  if (content !== null && rfield === "mistral") {
    delta = { content: [{ type: "thinking", thinking: [{ type: "text", text: content }] }] };
  } else if (content !== null && rfield) delta = { [rfield]: content };
  const body = {
    id: "chatcmpl-fake",
    object: "chat.completion.chunk",
    created: 0,
    model: "fake",
    choices: [{ index: 0, delta, finish_reason: finish }],
  };
  return `data: ${JSON.stringify(body)}\n\n`;
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const parts: Buffer[] = [];
  for await (const part of req) parts.push(part as Buffer);
  return JSON.parse(Buffer.concat(parts).toString("utf8")) as Record<string, unknown>;
}

async function answer(
  req: IncomingMessage,
  res: ServerResponse,
  records: Map<string, UpstreamRecord>,
): Promise<void> {
  const started = Date.now();
  const body = await readJson(req);
  const messages = (body.messages as { role: string; content: unknown }[] | undefined) ?? [];
  const last = messages.at(-1)?.content;
  const d = parseDirective(typeof last === "string" ? last : "");
  const {
    model: _model,
    messages: _messages,
    max_tokens: _maxTokens,
    max_completion_tokens: _maxCompletionTokens,
    ...params
  } = body;
  const record: UpstreamRecord = {
    id: d.id,
    model: String(body.model),
    maxTokens: typeof body.max_tokens === "number" ? body.max_tokens : null,
    maxCompletionTokens:
      typeof body.max_completion_tokens === "number" ? body.max_completion_tokens : null,
    messages,
    params,
    includeUsage:
      (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true,
    authorization: req.headers.authorization ?? null,
    tokensSent: 0,
    clientAborted: false,
    abortedAfterMs: null,
    finished: false,
  };
  if (d.id) records.set(d.id, record);
  const tok = d.bill ? await loadO200k() : null;
  // Every chunk's text as written (what the model produced), and whether the thinking ended.
  const chunks: string[] = [];
  let thought = d.think === 0;
  const bill = () =>
    tok
      ? billOf(tok, messages, chunks, {
          tokens: d.think,
          thought,
          bound: record.maxCompletionTokens ?? record.maxTokens,
        })
      : undefined;
  res.on("close", () => {
    if (!record.finished) {
      record.clientAborted = true;
      record.abortedAfterMs = Date.now() - started;
    }
    record.bill = bill();
  });

  if (d.headerDelay) await sleep(d.headerDelay);
  if (d.status !== 200) {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (d.status === 429) headers["retry-after"] = String(d.retryAfter);
    res.writeHead(d.status, headers);
    res.end(JSON.stringify({ error: { message: "secret upstream internals sk-live-123" } }));
    record.finished = true;
    return;
  }
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  res.flushHeaders();
  if (d.firstDelay) await sleep(d.firstDelay);
  thought = true;
  if (d.early) {
    const usage = { prompt_tokens: 1, completion_tokens: 0, total_tokens: 1 };
    res.write(`data: ${JSON.stringify({ id: "chatcmpl-fake", choices: [], usage })}\n\n`);
  }
  let bound = record.maxTokens ?? record.maxCompletionTokens;
  if (d.ignoremax) bound = null;
  // Hidden reasoning takes its share of the bound first, as at OpenAI.
  const hidden = bound === null ? d.think : Math.min(d.think, bound);
  if (bound !== null) bound -= hidden;
  for (let i = 0; i < d.reasoning && (bound === null || i < bound); i++) {
    if (record.clientAborted) return;
    if (i > 0 && d.delay) await sleep(d.delay);
    chunks.push(i === 0 ? "think" : " think");
    res.write(chunk(chunks.at(-1) as string, null, d.rfield));
    record.tokensSent++;
  }
  const reasoned = record.tokensSent;
  if (bound !== null) bound = Math.max(0, bound - reasoned);
  const limit = bound === null ? d.tokens : Math.min(d.tokens, bound);
  // Billing (o200k) also stops at the bound in tokens, not chunks: a chunk of many tokens
  // (textb64 of mixed whitespace) must not take it past max_tokens, which no provider does.
  let billed = 0;
  let cappedInTokens = false;
  for (let i = 0; i < limit; i++) {
    if (record.clientAborted) return;
    if (i === d.hang) return; // keep the socket open and silent
    if (i === d.cut) {
      if (d.linger) await sleep(d.linger);
      res.socket?.destroy();
      return;
    }
    if (i === d.bad) {
      res.write("data: {not json\n\n");
      continue;
    }
    if (i > 0 && d.delay) await sleep(d.delay);
    const text = i === 0 ? d.text : ` ${d.text}`;
    billed += tok ? tok.encode(text).length : 0;
    if (tok && bound !== null && billed > bound) {
      cappedInTokens = true;
      break;
    }
    chunks.push(text);
    res.write(chunk(chunks.at(-1) as string, null));
    record.tokensSent++;
  }
  if (record.clientAborted) return;
  res.write(chunk(null, limit < d.tokens || cappedInTokens ? "length" : "stop"));
  if (d.usage && record.includeUsage) {
    const b = bill();
    const promptTokens = b?.promptTokens ?? Math.ceil(JSON.stringify(messages).length / 4);
    const completion = b?.completionTokens ?? record.tokensSent + hidden;
    const usage = {
      prompt_tokens: promptTokens,
      completion_tokens: completion,
      total_tokens: promptTokens + completion,
    };
    res.write(`data: ${JSON.stringify({ id: "chatcmpl-fake", choices: [], usage })}\n\n`);
  }
  res.write("data: [DONE]\n\n");
  record.finished = true;
  res.end();
}

/** Starts the fake upstream on a free loopback port. */
export async function startFakeUpstream(): Promise<FakeUpstream> {
  const records = new Map<string, UpstreamRecord>();
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (req.method === "POST" && url.pathname === "/v1/chat/completions") {
      answer(req, res, records).catch(() => res.destroy());
      return;
    }
    if (req.method === "GET" && url.pathname === "/__test/bills") {
      const prefix = url.searchParams.get("prefix") ?? "";
      const bills = [...records.values()]
        .filter((r) => r.bill && r.id.startsWith(prefix))
        .map((r) => ({ id: r.id, model: r.model, clientAborted: r.clientAborted, ...r.bill }));
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(bills));
      return;
    }
    const rec = /^\/__test\/requests\/([\w-]+)$/.exec(url.pathname);
    if (req.method === "GET" && rec?.[1]) {
      const found = records.get(rec[1]);
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
    records,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
