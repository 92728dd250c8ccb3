/**
 * @module An OpenAI-compatible chat-completions server on loopback whose behaviour is chosen by
 * a directive in the last user message, e.g. `[[fake id=a1 tokens=5 delay=10 usage=0 status=429 cut=3 hang=2 bad=2]]`.
 *
 * id: key for GET /__test/requests/<id>; tokens: how many to stream; delay / firstDelay: ms
 * before each later / the first token; usage=0: omit the usage chunk; status: answer this
 * HTTP status instead (429 adds Retry-After: retryAfter); cut=N: destroy the socket before
 * token N; hang=N: go silent before token N; bad=N: send malformed JSON as token N;
 * text / textb64: the token text (base64url for text with spaces or newlines);
 * headerDelay=MS: wait MS before answering at all (status and headers);
 * ignoremax=1: stream all tokens whatever max_tokens says; linger=MS: wait MS before a cut, so
 * the tokens written before it reach the client (a socket destroyed right after a write can
 * lose that write in transit); reasoning=N: first stream N reasoning tokens, in the field
 * `rfield` names (`reasoning_content`, the default, `reasoning`, or `mistral` for thinking parts),
 * and, when the request bounds output, count them against that bound as OpenAI does;
 * early=1: send a usage chunk (completion_tokens 0) before the first token, as a provider that
 * reports usage early does (it is not the final word).
 * denykey=K: answer 401 to the key K (key rotation). A key written `name.key=v` applies only to
 * the fake started with that name (two fakes behind one route read the same message).
 * calls=N: answer with N function calls (parallel when N > 1) instead of text, unless the last
 * message is a `tool` result (then text, as a model that has its results); tname: the function's
 * name (default get_weather); argsb64: its arguments (base64url; default {"location":"Tokyo"}),
 * streamed in pieces of `piece` characters (default 5); with calls, cut=N cuts before piece N.
 * The shape is OpenAI's recorded stream of a gpt-4.1-nano tool call (a chunk with the role and
 * `content: null`, a chunk with index, id, type and name and empty arguments, argument pieces,
 * `finish_reason: "tool_calls"`, the usage chunk): alexbrowng/aiomodels,
 * tests/openai/chat_completion_chunks/get_weather.py.
 * think=N: N hidden reasoning tokens, thought during the silence of firstDelay (billed in usage
 * only, as OpenAI's reasoning models do); bill=1: count the request with o200k (fake-bill.ts),
 * report that count as its usage, and keep the bill in the record (GET /__test/bills?prefix=P
 * lists the bills of ids starting with P).
 * The directive is read from the last message that has one (string or text parts), so a
 * second turn that ends with `tool` messages keeps its first turn's directive.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { billOf, loadO200k } from "./fake-bill";
import type { UpstreamRecord } from "./upstream-record";

interface Directive {
  id: string;
  tokens: number;
  delay: number;
  firstDelay: number;
  headerDelay: number;
  usage: boolean;
  status: number;
  cut: number;
  hang: number;
  bad: number;
  retryAfter: number;
  text: string;
  ignoremax: number;
  linger: number;
  reasoning: number;
  rfield: string;
  early: number;
  think: number;
  bill: number;
  denykey: string;
  calls: number;
  tname: string;
  args: string;
  piece: number;
}

export interface FakeUpstream {
  url: string;
  records: Map<string, UpstreamRecord>;
  close(): Promise<void>;
}

function parseDirective(message: string, name: string): Directive {
  const d: Directive = {
    id: "",
    tokens: 5,
    delay: 0,
    firstDelay: 0,
    headerDelay: 0,
    usage: true,
    status: 200,
    cut: -1,
    hang: -1,
    bad: -1,
    retryAfter: 7,
    text: "tok",
    ignoremax: 0,
    linger: 0,
    reasoning: 0,
    rfield: "reasoning_content",
    early: 0,
    think: 0,
    bill: 0,
    denykey: "",
    calls: 0,
    tname: "get_weather",
    args: '{"location":"Tokyo"}',
    piece: 5,
  };
  const m = /\[\[fake([^\]]*)\]\]/.exec(message);
  for (const pair of (m?.[1] ?? "").trim().split(/\s+/)) {
    const [scoped = "", v = ""] = pair.split("=");
    const dot = scoped.indexOf(".");
    if (dot > 0 && scoped.slice(0, dot) !== name) continue;
    const k = dot > 0 ? scoped.slice(dot + 1) : scoped;
    if (k === "id" || k === "text" || k === "rfield" || k === "denykey" || k === "tname") d[k] = v;
    else if (k === "textb64") d.text = Buffer.from(v, "base64url").toString("utf8");
    else if (k === "argsb64") d.args = Buffer.from(v, "base64url").toString("utf8");
    else if (k === "usage") d.usage = v !== "0";
    else if (k && k in d) (d as unknown as Record<string, number>)[k] = Number(v);
  }
  return d;
}

/** The text of the last message that holds a directive (a string or text parts). */
function directiveText(messages: { content: unknown }[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const c = messages[i]?.content;
    const text =
      typeof c === "string"
        ? c
        : Array.isArray(c)
          ? c.map((p: { text?: unknown }) => (typeof p?.text === "string" ? p.text : "")).join("")
          : "";
    if (text.includes("[[fake")) return text;
  }
  return "";
}

/** A chunk of the recorded shape with this delta. */
function deltaChunk(delta: Record<string, unknown>, finish: string | null = null): string {
  const body = {
    id: "chatcmpl-fake",
    object: "chat.completion.chunk",
    created: 0,
    model: "fake",
    choices: [{ index: 0, delta, finish_reason: finish }],
  };
  return `data: ${JSON.stringify(body)}\n\n`;
}

/**
 * Streams `d.calls` function calls as OpenAI records them; false when cut (the socket is gone).
 * Each argument piece counts as one token sent.
 */
async function streamCalls(res: ServerResponse, d: Directive, record: UpstreamRecord) {
  res.write(deltaChunk({ role: "assistant", content: null }));
  let piece = 0;
  for (let c = 0; c < d.calls; c++) {
    const id = `call_fake${c}`;
    const fn = { name: d.tname, arguments: "" };
    res.write(deltaChunk({ tool_calls: [{ index: c, id, type: "function", function: fn }] }));
    // By code points, so an emoji is never split into halves.
    const chars = Array.from(d.args);
    for (let at = 0; at < chars.length; at += d.piece) {
      if (record.clientAborted) return false;
      if (piece === d.cut) {
        if (d.linger) await sleep(d.linger);
        res.socket?.destroy();
        return false;
      }
      if (piece > 0 && d.delay) await sleep(d.delay);
      const args = chars.slice(at, at + d.piece).join("");
      res.write(deltaChunk({ tool_calls: [{ index: c, function: { arguments: args } }] }));
      record.tokensSent++;
      piece++;
    }
  }
  res.write(deltaChunk({}, "tool_calls"));
  return true;
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
  name: string,
): Promise<void> {
  const started = Date.now();
  const body = await readJson(req);
  const messages = (body.messages as { role: string; content: unknown }[] | undefined) ?? [];
  const d = parseDirective(directiveText(messages), name);
  if (messages.at(-1)?.role === "tool") d.calls = 0;
  if (d.denykey && req.headers.authorization === `Bearer ${d.denykey}`) d.status = 401;
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
  if (d.calls > 0) {
    if (!(await streamCalls(res, d, record))) return;
    d.tokens = 0;
  }
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
    res.write(chunk(text, null));
    record.tokensSent++;
  }
  if (record.clientAborted) return;
  if (d.calls === 0) res.write(chunk(null, limit < d.tokens || cappedInTokens ? "length" : "stop"));
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

/** Starts the fake upstream on a free loopback port; `name` scopes `name.key=v` directives. */
export async function startFakeUpstream(name = ""): Promise<FakeUpstream> {
  const records = new Map<string, UpstreamRecord>();
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (req.method === "POST" && url.pathname === "/v1/chat/completions") {
      answer(req, res, records, name).catch(() => res.destroy());
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
