/** @module A local Upstash-compatible REST server in front of a real redis-server, with test hooks under /__test/. */
import { createHash } from "node:crypto";
import http from "node:http";
import type { RedisHandle } from "./redis";
import { connectResp, type RespConnection, RespError, type RespValue } from "./resp";

/** What the server does to every REST request (test hooks under /__test/ are never affected). */
export type FaultMode = "none" | "error500" | "hang" | "close" | "late";

/** Counters since the last reset: authenticated REST requests and the commands inside them. */
export interface UpstashStats {
  requests: number;
  commands: number;
}

/**
 * A running server; `url` is what `@upstash/redis` takes as `url`.
 *
 * Scopes: a client whose url is `${url}/__scope/<name>` talks to the same Redis, but its requests
 * are also counted under `<name>`, and a fault set for `<name>` hits only them. Test files run in
 * parallel against one server, so a test that counts requests or injects faults should use a
 * scope of its own (e.g. a random UUID) instead of the global counters and fault.
 */
export interface UpstashServer {
  url: string;
  port: number;
  /** Global counters, or those of one scope (zeros for a scope never seen). */
  stats(scope?: string): UpstashStats;
  /** Zeroes the global counters and forgets every scope, or zeroes one scope. */
  resetStats(scope?: string): void;
  /** Sets the global fault, or the fault of one scope (which then overrides the global one). */
  setFault(mode: FaultMode, scope?: string): void;
  /** Stops listening, destroys open (also hanging) sockets and closes the Redis connections. */
  close(): Promise<void>;
}

/** Options of {@link startUpstashServer}. `port` defaults to a free one. */
export interface UpstashServerOptions {
  redisPort: number;
  token: string;
  port?: number;
  redisHost?: string;
  /**
   * The redis behind this server, for fault drills: with it, `POST /__test/redis` with
   * `{"action": "kill" | "restart"}` kills redis (SIGKILL) or starts it again on the same port.
   */
  redis?: Pick<RedisHandle, "kill" | "restart">;
}

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
type Command = string[];

/** A command ready for Redis, plus how to turn Redis's reply back into what the client expects. */
interface Prepared {
  args: Command;
  fixReply?: (reply: RespValue) => RespValue;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const FAULT_MODES: readonly FaultMode[] = ["none", "error500", "hang", "close", "late"];
/** Fault `late`: the commands run at once, their answer is sent this much later. */
export const LATE_ANSWER_MS = 1_000;
const SCOPE_PREFIX = /^\/__scope\/([A-Za-z0-9_.-]+)(\/.*)?$/;

/**
 * Commands that would change the state of a shared connection for every other client (or break
 * the request/reply stream), so they are refused here; Upstash's REST API refuses them too.
 */
const REFUSED = new Set([
  "SUBSCRIBE",
  "PSUBSCRIBE",
  "SSUBSCRIBE",
  "UNSUBSCRIBE",
  "PUNSUBSCRIBE",
  "SUNSUBSCRIBE",
  "MONITOR",
  "SYNC",
  "PSYNC",
  "QUIT",
  "RESET",
  "HELLO",
  "SELECT",
  "MULTI",
  "EXEC",
  "DISCARD",
  "WATCH",
  "UNWATCH",
]);

/** Commands that can block their connection; a request holding one gets its own connection. */
const BLOCKING = new Set([
  "BLPOP",
  "BRPOP",
  "BRPOPLPUSH",
  "BLMOVE",
  "BLMPOP",
  "BZPOPMIN",
  "BZPOPMAX",
  "BZMPOP",
  "WAIT",
  "WAITAOF",
]);

const KNOWN_FLAG = "allow-key-locking";
/** The shebang line of a Lua script with a `flags=` list (Redis 7 syntax). */
const SHEBANG = /^#!lua[ \t]+flags=(\S*)[ \t]*(?=\r?\n|$)/;

/**
 * Removes the Upstash-only `allow-key-locking` flag, which stock Redis rejects ("Unexpected flag
 * in script shebang"). Other flags are kept; a shebang left with none becomes an empty line, so
 * line numbers in Lua error messages stay those of the client's script. Returns undefined when
 * the script does not carry the flag (it then goes to Redis unchanged).
 */
export function stripKnownShebang(script: string): string | undefined {
  const match = SHEBANG.exec(script);
  if (!match) return undefined;
  const flags = (match[1] ?? "").split(",").filter((flag) => flag !== "");
  if (!flags.includes(KNOWN_FLAG)) return undefined;
  const rest = flags.filter((flag) => flag !== KNOWN_FLAG);
  const line = rest.length > 0 ? `#!lua flags=${rest.join(",")}` : "";
  return line + script.slice(match[0].length);
}

function sha1(text: string): string {
  return createHash("sha1").update(text, "utf8").digest("hex");
}

function isBlocking(args: Command): boolean {
  const name = (args[0] ?? "").toUpperCase();
  if (BLOCKING.has(name)) return true;
  // XREAD/XREADGROUP block only with a BLOCK option.
  return (
    (name === "XREAD" || name === "XREADGROUP") && args.some((arg) => arg.toUpperCase() === "BLOCK")
  );
}

/** Validates one JSON command: a non-empty array of strings/numbers/booleans. */
function toCommand(value: unknown): Command {
  if (!Array.isArray(value) || value.length === 0) {
    throw new HttpError(400, "ERR command must be a non-empty JSON array");
  }
  return value.map((arg: unknown) => {
    if (typeof arg === "string") return arg;
    if (typeof arg === "number" || typeof arg === "boolean") return String(arg);
    throw new HttpError(400, "ERR command arguments must be strings or numbers");
  });
}

function toCommands(value: unknown): Command[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new HttpError(400, "ERR body must be a non-empty JSON array of commands");
  }
  return value.map(toCommand);
}

function checkAllowed(args: Command): void {
  const name = (args[0] ?? "").toUpperCase();
  const refused =
    REFUSED.has(name) || (name === "CLIENT" && (args[1] ?? "").toUpperCase() === "REPLY");
  if (refused) throw new HttpError(400, `ERR Command is not allowed over REST: ${args[0]}`);
}

/**
 * RESP reply to JSON. With base64 every string is base64 except a top-level simple "OK";
 * without it bulk strings are decoded as UTF-8. Integers and nulls pass through.
 */
function toJson(value: RespValue, base64: boolean, simple = false): Json {
  if (value === null || typeof value === "number") return value;
  // Inside arrays even a simple "OK" is encoded: @upstash/redis base64-decodes every nested
  // string, and a bare "OK" would come out as garbage ("8").
  if (Array.isArray(value)) return value.map((item) => toJson(item, base64));
  if (value instanceof RespError) {
    // Only reachable nested inside an array (e.g. a Lua table holding an error); keep its text.
    return toJson(value.message, base64);
  }
  if (typeof value === "string") {
    if (!base64 || (simple && value === "OK")) return value;
    return Buffer.from(value, "utf8").toString("base64");
  }
  return base64 ? value.toString("base64") : value.toString("utf8");
}

/** One command's answer in Upstash's shape: `{ result }` or `{ error }` (errors never encoded). */
function toEntry(value: RespValue, base64: boolean): { result: Json } | { error: string } {
  if (value instanceof RespError) return { error: value.message };
  return { result: toJsonTop(value, base64) };
}

function toJsonTop(value: RespValue, base64: boolean): Json {
  // Simple strings ("OK", "PONG", "QUEUED") arrive as JS strings, bulk strings as Buffers.
  return typeof value === "string" ? toJson(value, base64, true) : toJson(value, base64);
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function sendJson(
  res: http.ServerResponse,
  status: number,
  body: Json,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Starts the REST server on 127.0.0.1. It speaks what `@upstash/redis` 1.39 sends: `POST /`
 * (one command), `POST /pipeline`, `POST /multi-exec`, the path form (`/set/k/v`), Bearer or
 * `_token` auth, `Upstash-Encoding: base64`, and `upstash-sync-token` echo. Redis errors answer
 * 400; an unreachable Redis answers 500 at once and the next request reconnects.
 */
export async function startUpstashServer(opts: UpstashServerOptions): Promise<UpstashServer> {
  const redisHost = opts.redisHost ?? "127.0.0.1";
  const counters: UpstashStats = { requests: 0, commands: 0 };
  const scopeCounters = new Map<string, UpstashStats>();
  let fault: FaultMode = "none";
  const scopeFaults = new Map<string, FaultMode>();
  let closing = false;

  /** SHA1 of a flagged script as the client knows it -> SHA1 of the stripped script in Redis. */
  const scriptShas = new Map<string, string>();
  /** Every open Redis connection, so close() can end them all. */
  const openConnections = new Set<RespConnection>();
  let shared: Promise<RespConnection> | undefined;
  const idleTx: RespConnection[] = [];

  const connectRedis = async (): Promise<RespConnection> => {
    if (closing) throw new Error("server is closing");
    let conn: RespConnection;
    try {
      // A short timeout: a dead Redis must give a quick 500, not a hanging request.
      conn = await connectResp({ port: opts.redisPort, host: redisHost, timeoutMs: 1000 });
    } catch (error) {
      throw new HttpError(500, `ERR redis unavailable: ${errorMessage(error)}`);
    }
    openConnections.add(conn);
    return conn;
  };

  const dropConnection = (conn: RespConnection): void => {
    openConnections.delete(conn);
    void conn.close();
  };

  /** The connection shared by plain commands and pipelines; reconnects once it has died. */
  const sharedConnection = async (): Promise<RespConnection> => {
    for (let attempt = 0; attempt < 2; attempt++) {
      if (!shared) {
        const created = connectRedis();
        shared = created;
        // A failed connect must not stick: the next request tries again.
        created.catch(() => {
          if (shared === created) shared = undefined;
        });
      }
      const current = shared;
      const conn = await current;
      if (!conn.closed) return conn;
      if (shared === current) shared = undefined;
      openConnections.delete(conn);
    }
    throw new HttpError(500, "ERR redis unavailable: connection closed");
  };

  const acquireTx = async (): Promise<RespConnection> => {
    for (let conn = idleTx.pop(); conn; conn = idleTx.pop()) {
      if (!conn.closed) return conn;
      openConnections.delete(conn);
    }
    return connectRedis();
  };

  const releaseTx = (conn: RespConnection): void => {
    if (conn.closed || closing || idleTx.length >= 4) dropConnection(conn);
    else idleTx.push(conn);
  };

  /** Applies the Lua shebang rewrite and the SHA mapping to one command. */
  const prepare = (args: Command): Prepared => {
    const name = (args[0] ?? "").toUpperCase();
    if ((name === "EVAL" || name === "EVAL_RO") && args[1] !== undefined) {
      const stripped = stripKnownShebang(args[1]);
      if (stripped === undefined) return { args };
      scriptShas.set(sha1(args[1]), sha1(stripped));
      return { args: [args[0] ?? name, stripped, ...args.slice(2)] };
    }
    if (name === "SCRIPT" && (args[1] ?? "").toUpperCase() === "LOAD" && args[2] !== undefined) {
      const stripped = stripKnownShebang(args[2]);
      if (stripped === undefined) return { args };
      const original = sha1(args[2]);
      scriptShas.set(original, sha1(stripped));
      // The client hashes the script it sent, so it must get that SHA back, not the stripped one.
      return {
        args: [args[0] ?? name, args[1] ?? "LOAD", stripped, ...args.slice(3)],
        fixReply: (reply) => (reply instanceof RespError ? reply : Buffer.from(original)),
      };
    }
    if ((name === "EVALSHA" || name === "EVALSHA_RO") && args[1] !== undefined) {
      // An unknown SHA (a flagged script never EVALed here) goes through as is: Redis answers
      // NOSCRIPT, the client falls back to EVAL, and from then on the mapping hits.
      const mapped = scriptShas.get(args[1].toLowerCase());
      return mapped ? { args: [args[0] ?? name, mapped, ...args.slice(2)] } : { args };
    }
    if (name === "SCRIPT" && (args[1] ?? "").toUpperCase() === "EXISTS") {
      const shas = args.slice(2).map((sha) => scriptShas.get(sha.toLowerCase()) ?? sha);
      return { args: [args[0] ?? name, args[1] ?? "EXISTS", ...shas] };
    }
    return { args };
  };

  const fix = (prepared: Prepared, reply: RespValue): RespValue =>
    prepared.fixReply ? prepared.fixReply(reply) : reply;

  /** Runs independent commands, pipelined in one write; each reply may be a RespError. */
  const runCommands = async (commands: Command[]): Promise<RespValue[]> => {
    const prepared = commands.map(prepare);
    const args = prepared.map((p) => p.args);
    let replies: RespValue[];
    if (commands.some(isBlocking)) {
      // A blocking command must not stall every other client on the shared connection.
      const conn = await connectRedis();
      try {
        replies = await conn.sendMany(args);
      } finally {
        dropConnection(conn);
      }
    } else {
      const conn = await sharedConnection();
      replies = await conn.sendMany(args);
    }
    return replies.map((reply, i) => {
      const p = prepared[i];
      return p ? fix(p, reply) : reply;
    });
  };

  /**
   * MULTI/EXEC on a connection of its own, so no other client's command lands inside it. A
   * command refused while queueing aborts the whole transaction (EXECABORT), as in Redis.
   */
  const runTransaction = async (commands: Command[]): Promise<RespValue[]> => {
    const prepared = commands.map(prepare);
    const conn = await acquireTx();
    let replies: RespValue[];
    try {
      replies = await conn.sendMany([["MULTI"], ...prepared.map((p) => p.args), ["EXEC"]]);
    } finally {
      releaseTx(conn);
    }
    const exec = replies[replies.length - 1];
    if (exec instanceof RespError) {
      const queued = replies.slice(1, -1).find((reply) => reply instanceof RespError);
      const cause = queued instanceof RespError ? ` (${queued.message})` : "";
      throw new HttpError(400, `${exec.message}${cause}`);
    }
    if (!Array.isArray(exec)) throw new HttpError(400, "EXECABORT Transaction aborted");
    return exec.map((reply, i) => {
      const p = prepared[i];
      return p ? fix(p, reply) : reply;
    });
  };

  const isAuthorized = (req: http.IncomingMessage, url: URL): boolean => {
    const header = req.headers.authorization ?? "";
    const match = /^Bearer\s+(.+)$/i.exec(header);
    const token = match?.[1]?.trim() ?? url.searchParams.get("_token");
    return token === opts.token;
  };

  /** Parses the request into commands; `kind` says how to run and answer them. */
  const parseRequest = (
    req: http.IncomingMessage,
    url: URL,
    pathname: string,
    body: Buffer,
  ): { kind: "single" | "pipeline" | "multi"; commands: Command[] } => {
    const route = pathname.replace(/\/+$/, "") || "/";
    const parseJson = (): unknown => {
      try {
        return JSON.parse(body.toString("utf8"));
      } catch {
        throw new HttpError(400, "ERR failed to parse the JSON body");
      }
    };
    if (route === "/" || route === "/pipeline" || route === "/multi-exec") {
      if (req.method !== "POST" && req.method !== "PUT") {
        throw new HttpError(405, "ERR method not allowed");
      }
      if (route === "/") return { kind: "single", commands: [toCommand(parseJson())] };
      return {
        kind: route === "/pipeline" ? "pipeline" : "multi",
        commands: toCommands(parseJson()),
      };
    }
    // Path form: /set/k/v, a POST body as the last argument, query parameters after it.
    const args = route
      .split("/")
      .filter((segment) => segment !== "")
      .map((segment) => decodeURIComponent(segment));
    if (body.length > 0 && (req.method === "POST" || req.method === "PUT")) {
      args.push(body.toString("utf8"));
    }
    for (const [key, value] of url.searchParams) {
      if (key === "_token") continue;
      args.push(key);
      if (value !== "") args.push(value);
    }
    return { kind: "single", commands: [args] };
  };

  const statsOf = (scope?: string): UpstashStats =>
    scope === undefined
      ? { ...counters }
      : { ...(scopeCounters.get(scope) ?? { requests: 0, commands: 0 }) };

  const resetStats = (scope?: string): void => {
    if (scope !== undefined) {
      scopeCounters.delete(scope);
      return;
    }
    counters.requests = 0;
    counters.commands = 0;
    scopeCounters.clear();
  };

  const setFault = (mode: FaultMode, scope?: string): void => {
    if (scope === undefined) fault = mode;
    else scopeFaults.set(scope, mode);
  };

  const faultOf = (scope?: string): FaultMode =>
    (scope === undefined ? undefined : scopeFaults.get(scope)) ?? fault;

  const handleTestRoute = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
  ): Promise<void> => {
    const route = url.pathname.replace(/\/+$/, "");
    const scope = url.searchParams.get("scope") ?? undefined;
    if (route === "/__test/stats" && req.method === "GET") {
      sendJson(res, 200, { ...statsOf(scope) });
    } else if (route === "/__test/reset" && req.method === "POST") {
      resetStats(scope);
      sendJson(res, 200, { ...statsOf(scope) });
    } else if (route === "/__test/fault" && req.method === "POST") {
      let request: { mode?: unknown; scope?: unknown } = {};
      try {
        request = JSON.parse((await readBody(req)).toString("utf8")) as typeof request;
      } catch {
        // answered as a bad mode below
      }
      const mode = request.mode;
      const bodyScope = typeof request.scope === "string" ? request.scope : scope;
      if (!FAULT_MODES.includes(mode as FaultMode)) {
        sendJson(res, 400, { error: `mode must be one of ${FAULT_MODES.join(", ")}` });
        return;
      }
      setFault(mode as FaultMode, bodyScope);
      sendJson(res, 200, { mode: faultOf(bodyScope) });
    } else if (route === "/__test/fault" && req.method === "GET") {
      sendJson(res, 200, { mode: faultOf(scope) });
    } else if (route === "/__test/redis" && req.method === "POST" && opts.redis) {
      let action: unknown;
      try {
        action = (JSON.parse((await readBody(req)).toString("utf8")) as { action?: unknown })
          .action;
      } catch {
        // answered as a bad action below
      }
      if (action !== "kill" && action !== "restart") {
        sendJson(res, 400, { error: 'action must be "kill" or "restart"' });
        return;
      }
      await (action === "kill" ? opts.redis.kill() : opts.redis.restart());
      sendJson(res, 200, { action });
    } else if (route === "/__test/flushall" && req.method === "POST") {
      const [reply] = await runCommands([["FLUSHALL"]]);
      sendJson(res, 200, toEntry(reply ?? null, false));
    } else {
      sendJson(res, 404, { error: "unknown test hook" });
    }
  };

  const run = <T>(work: () => Promise<T>): Promise<T> => work();
  const runThenWait = async <T>(work: () => Promise<T>): Promise<T> => {
    const result = await work();
    await new Promise((resolve) => setTimeout(resolve, LATE_ANSWER_MS));
    return result;
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (url.pathname.startsWith("/__test/")) {
      await handleTestRoute(req, res, url);
      return;
    }
    const scoped = SCOPE_PREFIX.exec(url.pathname);
    const scope = scoped?.[1];
    const pathname = scoped ? (scoped[2] ?? "/") : url.pathname;
    const body = await readBody(req);
    const authorized = isAuthorized(req, url);
    let parsed: ReturnType<typeof parseRequest> | HttpError;
    try {
      parsed = parseRequest(req, url, pathname, body);
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      parsed = error;
    }
    if (authorized) {
      const commands = parsed instanceof HttpError ? 0 : parsed.commands.length;
      counters.requests += 1;
      counters.commands += commands;
      if (scope !== undefined) {
        const own = scopeCounters.get(scope) ?? { requests: 0, commands: 0 };
        own.requests += 1;
        own.commands += commands;
        scopeCounters.set(scope, own);
      }
    }

    const injected = faultOf(scope);
    if (injected === "close") {
      req.socket.destroy();
      return;
    }
    if (injected === "hang") return; // never answered; close() destroys the socket
    if (injected === "error500") {
      sendJson(res, 500, { error: "ERR injected fault: the server answered 500" });
      return;
    }

    if (!authorized) {
      sendJson(res, 401, { error: "WRONGPASS invalid or missing auth token" });
      return;
    }
    if (parsed instanceof HttpError) throw parsed;
    for (const command of parsed.commands) checkAllowed(command);

    // A store that commits at once but answers late (a slow path back): run, then wait.
    const answer = injected === "late" ? runThenWait : run;
    const syncHeader = req.headers["upstash-sync-token"];
    const headers = {
      // Echo the client's token: there is one Redis, so every read already sees every write.
      "upstash-sync-token": typeof syncHeader === "string" && syncHeader !== "" ? syncHeader : "0",
    };
    const base64 = String(req.headers["upstash-encoding"] ?? "").toLowerCase() === "base64";

    if (parsed.kind === "multi") {
      const results = await answer(() => runTransaction(parsed.commands));
      sendJson(
        res,
        200,
        results.map((reply) => toEntry(reply, base64)),
        headers,
      );
      return;
    }
    const replies = await answer(() => runCommands(parsed.commands));
    if (parsed.kind === "pipeline") {
      sendJson(
        res,
        200,
        replies.map((reply) => toEntry(reply, base64)),
        headers,
      );
      return;
    }
    const entry = toEntry(replies[0] ?? null, base64);
    sendJson(res, "error" in entry ? 400 : 200, entry, headers);
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      const status = error instanceof HttpError ? error.status : 500;
      const message =
        error instanceof HttpError
          ? error.message
          : `ERR redis unavailable: ${errorMessage(error)}`;
      sendJson(res, status, { error: message });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("server has no TCP address");
  const port = address.port;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    stats: statsOf,
    resetStats,
    setFault,
    close: async () => {
      if (closing) return;
      closing = true;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Hanging requests and idle keep-alive sockets would otherwise hold close() forever.
        server.closeAllConnections();
      });
      await Promise.all([...openConnections].map((conn) => conn.close()));
      openConnections.clear();
      idleTx.length = 0;
      shared = undefined;
    },
  };
}
