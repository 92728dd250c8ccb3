/** @module A minimal RESP2 client over node:net: pipelined commands, replies in FIFO order, no npm deps. */
import net from "node:net";

/**
 * A Redis error reply. It is a value, not a thrown error, so a caller relaying replies (the
 * Upstash-compatible server) can hand it on next to the other results of a pipeline.
 */
export class RespError {
  constructor(readonly message: string) {}
}

/** One RESP2 reply: simple string, integer, bulk string (raw bytes), null, error, or array. */
export type RespValue = string | number | Buffer | null | RespError | RespValue[];

/** A connection to Redis; every `send` is written at once, so calls in one tick pipeline. */
export interface RespConnection {
  /** Sends one command and resolves with its reply (a Redis error resolves as a `RespError`). */
  send(args: readonly (string | Buffer)[]): Promise<RespValue>;
  /** Sends several commands in a single write and resolves with their replies in order. */
  sendMany(commands: readonly (readonly (string | Buffer)[])[]): Promise<RespValue[]>;
  /** True once the socket has failed or been closed; every later `send` rejects. */
  readonly closed: boolean;
  /** Closes the socket; pending calls are rejected. */
  close(): Promise<void>;
}

interface Pending {
  resolve(value: RespValue): void;
  reject(error: Error): void;
}

const CRLF = Buffer.from("\r\n");

/** Encodes one command as a RESP array of bulk strings. */
export function encodeCommand(args: readonly (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = typeof arg === "string" ? Buffer.from(arg, "utf8") : arg;
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, CRLF);
  }
  return Buffer.concat(parts);
}

/** Marker for "the buffer does not yet hold a whole reply". */
const INCOMPLETE = Symbol("incomplete");

/**
 * Parses one reply starting at `offset`. Returns the value and the offset after it, or
 * INCOMPLETE when more bytes are needed (a frame split across TCP chunks).
 */
export function parseReply(
  buf: Buffer,
  offset: number,
): { value: RespValue; next: number } | typeof INCOMPLETE {
  if (offset >= buf.length) return INCOMPLETE;
  const lineEnd = buf.indexOf(CRLF, offset);
  if (lineEnd === -1) return INCOMPLETE;
  const type = String.fromCharCode(buf[offset] ?? 0);
  const line = buf.toString("utf8", offset + 1, lineEnd);
  const afterLine = lineEnd + 2;
  switch (type) {
    case "+":
      return { value: line, next: afterLine };
    case "-":
      return { value: new RespError(line), next: afterLine };
    case ":":
      return { value: Number(line), next: afterLine };
    case "$": {
      const len = Number(line);
      if (len < 0) return { value: null, next: afterLine };
      if (buf.length < afterLine + len + 2) return INCOMPLETE;
      // Copy out of the read buffer, which is reused/concatenated later.
      return {
        value: Buffer.from(buf.subarray(afterLine, afterLine + len)),
        next: afterLine + len + 2,
      };
    }
    case "*": {
      const count = Number(line);
      if (count < 0) return { value: null, next: afterLine };
      const items: RespValue[] = [];
      let next = afterLine;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, next);
        if (item === INCOMPLETE) return INCOMPLETE;
        items.push(item.value);
        next = item.next;
      }
      return { value: items, next };
    }
    default:
      throw new Error(`RESP protocol error: unexpected type byte ${JSON.stringify(type)}`);
  }
}

/** Opens a RESP connection; rejects if the TCP connect fails or takes longer than `timeoutMs`. */
export function connectResp(opts: {
  port: number;
  host?: string;
  timeoutMs?: number;
}): Promise<RespConnection> {
  const host = opts.host ?? "127.0.0.1";
  const timeoutMs = opts.timeoutMs ?? 2000;
  return new Promise((resolveConnect, rejectConnect) => {
    const socket = net.connect({ port: opts.port, host });
    socket.setNoDelay(true);
    const pending: Pending[] = [];
    let buffer: Buffer = Buffer.alloc(0);
    let closed = false;
    let connected = false;

    const fail = (error: Error): void => {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      socket.destroy();
      for (const p of pending.splice(0)) p.reject(error);
      if (!connected) rejectConnect(error);
    };

    const timer = setTimeout(
      () => fail(new Error(`RESP connect to ${host}:${opts.port} timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );

    socket.on("error", (error) => fail(error));
    socket.on("close", () => fail(new Error(`RESP connection to ${host}:${opts.port} closed`)));
    socket.on("data", (chunk: Buffer) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      let offset = 0;
      try {
        while (offset < buffer.length) {
          const parsed = parseReply(buffer, offset);
          if (parsed === INCOMPLETE) break;
          offset = parsed.next;
          const waiter = pending.shift();
          // A reply nobody asked for means the stream is out of step: nothing after it can be trusted.
          if (!waiter) throw new Error("RESP protocol error: reply without a pending command");
          waiter.resolve(parsed.value);
        }
      } catch (error) {
        fail(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      buffer = offset === buffer.length ? Buffer.alloc(0) : buffer.subarray(offset);
    });

    const enqueue = (payload: Buffer, count: number): Promise<RespValue>[] => {
      if (closed) {
        const error = new Error(`RESP connection to ${host}:${opts.port} is closed`);
        return Array.from({ length: count }, () => Promise.reject(error));
      }
      const promises = Array.from(
        { length: count },
        () =>
          new Promise<RespValue>((resolve, reject) => {
            pending.push({ resolve, reject });
          }),
      );
      socket.write(payload);
      return promises;
    };

    const connection: RespConnection = {
      get closed() {
        return closed;
      },
      send(args) {
        const [promise] = enqueue(encodeCommand(args), 1);
        return promise ?? Promise.reject(new Error("unreachable"));
      },
      sendMany(commands) {
        if (commands.length === 0) return Promise.resolve([]);
        return Promise.all(enqueue(Buffer.concat(commands.map(encodeCommand)), commands.length));
      },
      close() {
        if (closed) return Promise.resolve();
        return new Promise((resolve) => {
          socket.once("close", () => resolve());
          fail(new Error(`RESP connection to ${host}:${opts.port} closed by the client`));
        });
      },
    };

    socket.once("connect", () => {
      clearTimeout(timer);
      connected = true;
      resolveConnect(connection);
    });
  });
}
