/**
 * @module A streaming HTTP client for the bench: node:http with keep-alive, timings taken with
 * the monotonic clock (time to headers, to the first token, to the end), SSE counted without
 * parsing every event, and aborts at a chosen point.
 */
import http from "node:http";

/** How a target is spoken to. */
export type TargetKind = "direct" | "floor" | "worker" | "portkey";

export interface Target {
  name: string;
  kind: TargetKind;
  /** Base URL, no trailing slash. */
  url: string;
  agent: http.Agent;
  /** For `portkey`: where it should send the request (the fake upstream's /v1). */
  upstreamV1?: string;
}

export interface StreamOptions {
  message: string;
  /** Bearer token (worker). */
  token?: string;
  /** CF-Connecting-IP to send (worker). */
  ip?: string;
  streamId?: string;
  /** Model to ask for (worker; the gateway's default when absent). */
  model?: string;
  /** `cost_cap_usd` to send (worker; the gateway's default when absent). */
  costCapUsd?: number;
  /** Abort once this many tokens arrived (0: right at the headers). */
  abortAfterTokens?: number;
  /** Abort this long after the headers arrived. */
  abortAfterMs?: number;
  /** Abort this long after sending if no headers came yet (the request may still start). */
  abortBeforeHeadersMs?: number;
  /** Called when the headers arrive, before the body is read further. */
  onHeaders?: (status: number) => void;
  /** Called at each token with the running count. */
  onToken?: (count: number) => void;
  timeoutMs?: number;
}

export interface StreamResult {
  status: number;
  /** ms from send to the response headers. */
  headersMs: number | null;
  firstTokenMs: number | null;
  endMs: number | null;
  tokens: number;
  /** `done`, `error` (an error frame), or null when the stream ended without either. */
  terminal: "done" | "error" | null;
  /** error_code of a JSON error body or of the error frame. */
  errorCode: string | null;
  /** `detail` of a JSON error body (which budget refused, say). */
  errorDetail: string | null;
  /** A transport problem (reset, timeout); null when the exchange completed or we aborted it. */
  failure: string | null;
  /** We aborted it on purpose. */
  aborted: "before_headers" | "after_headers" | null;
  heartbeats: number;
  headers: http.IncomingHttpHeaders;
}

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/** Starts a keep-alive agent for a target. */
export function agentFor(maxSockets: number): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
}

function requestFor(
  t: Target,
  o: StreamOptions,
): { path: string; headers: Record<string, string>; body: string } {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    accept: "text/event-stream",
  };
  if (t.kind === "direct" || t.kind === "portkey") {
    if (t.kind === "portkey") {
      headers["x-portkey-provider"] = "openai";
      headers["x-portkey-custom-host"] = t.upstreamV1 ?? "";
    }
    headers.authorization = "Bearer sk-bench";
    const body = JSON.stringify({
      model: "gpt-4o-mini",
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: "user", content: o.message }],
    });
    return { path: "/v1/chat/completions", headers, body };
  }
  if (t.kind === "floor")
    return { path: "/", headers, body: JSON.stringify({ message: o.message }) };
  if (o.token) headers.authorization = `Bearer ${o.token}`;
  if (o.ip) headers["cf-connecting-ip"] = o.ip;
  const input: Record<string, unknown> = { message: o.message };
  if (o.streamId) input.stream_id = o.streamId;
  if (o.model) input.model = o.model;
  if (o.costCapUsd !== undefined) input.cost_cap_usd = o.costCapUsd;
  return { path: "/api/v1/stream", headers, body: JSON.stringify(input) };
}

/** Sends one streaming request and reads it to the end (or to the chosen abort). Never rejects. */
export function streamRequest(t: Target, o: StreamOptions): Promise<StreamResult> {
  const { path, headers, body } = requestFor(t, o);
  const start = nowMs();
  const r: StreamResult = {
    status: 0,
    headersMs: null,
    firstTokenMs: null,
    endMs: null,
    tokens: 0,
    terminal: null,
    errorCode: null,
    errorDetail: null,
    failure: null,
    aborted: null,
    heartbeats: 0,
    headers: {},
  };
  const openAi = t.kind === "direct" || t.kind === "portkey";
  return new Promise((resolve) => {
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = () => {
      if (settled) return;
      settled = true;
      for (const timer of timers) clearTimeout(timer);
      resolve(r);
    };
    const req = http.request(`${t.url}${path}`, {
      method: "POST",
      agent: t.agent,
      headers: { ...headers, "content-length": String(Buffer.byteLength(body)) },
    });
    const abort = (when: "before_headers" | "after_headers") => {
      if (settled) return;
      r.aborted = when;
      r.endMs = nowMs() - start;
      req.destroy();
      finish();
    };
    timers.push(
      setTimeout(() => {
        if (settled) return;
        r.failure = "timeout";
        req.destroy();
        finish();
      }, o.timeoutMs ?? 60_000),
    );
    if (o.abortBeforeHeadersMs !== undefined) {
      timers.push(
        setTimeout(() => {
          if (r.headersMs === null) abort("before_headers");
        }, o.abortBeforeHeadersMs),
      );
    }
    req.on("error", (e) => {
      if (settled) return;
      r.failure = e.message;
      finish();
    });
    req.on("response", (res) => {
      r.status = res.statusCode ?? 0;
      r.headersMs = nowMs() - start;
      r.headers = res.headers;
      o.onHeaders?.(r.status);
      res.setEncoding("utf8");
      if (r.status !== 200) {
        let text = "";
        res.on("data", (d: string) => {
          if (text.length < 4000) text += d;
        });
        res.on("end", () => {
          r.endMs = nowMs() - start;
          const m = /"error_code":"([a-z_]+)"/.exec(text);
          r.errorCode = m?.[1] ?? null;
          r.errorDetail = /"detail":"((?:[^"\\]|\\.)*)"/.exec(text)?.[1] ?? null;
          finish();
        });
        res.on("error", (e) => {
          if (!settled) r.failure = e.message;
          finish();
        });
        return;
      }
      if (o.abortAfterTokens === 0) {
        abort("after_headers");
        return;
      }
      if (o.abortAfterMs !== undefined) {
        timers.push(setTimeout(() => abort("after_headers"), o.abortAfterMs));
      }
      let buffer = "";
      const onEvent = (event: string) => {
        if (openAi) {
          const data = event.startsWith("data: ") ? event.slice(6) : "";
          if (data === "[DONE]") r.terminal = "done";
          else if (data.includes('"content":"')) token();
          return;
        }
        if (event.includes("event: message_chunk")) token();
        else if (event.includes("event: heartbeat")) r.heartbeats++;
        else if (event.includes("event: done")) r.terminal = "done";
        else if (event.includes("event: error")) {
          r.terminal = "error";
          r.errorCode = /"error_code":"([a-z_]+)"/.exec(event)?.[1] ?? null;
        }
      };
      const token = () => {
        r.tokens++;
        if (r.tokens === 1) r.firstTokenMs = nowMs() - start;
        o.onToken?.(r.tokens);
        if (o.abortAfterTokens !== undefined && r.tokens >= o.abortAfterTokens) {
          abort("after_headers");
        }
      };
      res.on("data", (d: string) => {
        if (settled) return;
        buffer += d;
        let cut = buffer.indexOf("\n\n");
        while (cut !== -1 && !settled) {
          onEvent(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          cut = buffer.indexOf("\n\n");
        }
      });
      res.on("end", () => {
        if (settled) return;
        r.endMs = nowMs() - start;
        finish();
      });
      res.on("error", (e) => {
        if (settled) return;
        r.failure = e.message;
        finish();
      });
    });
    req.end(body);
  });
}

/** True when a stream ran to a `done` (or `[DONE]`) with at least one token. */
export function completed(r: StreamResult): boolean {
  return r.status === 200 && r.terminal === "done" && r.tokens > 0 && r.failure === null;
}

/** Plain JSON request (minting tokens, usage, stats). */
export async function getJson<T>(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; body: T }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, body: body as T };
}
