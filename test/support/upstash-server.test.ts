/** @module The local Upstash-compatible REST server, driven from workerd by the unmodified @upstash clients. */
import { Ratelimit } from "@upstash/ratelimit";
import { Redis } from "@upstash/redis/cloudflare";
import { describe, expect, inject, it } from "vitest";

const upstashUrl = inject("upstashUrl");
const upstashToken = inject("upstashToken");

/** The flag stock Redis rejects and the server strips; @upstash/ratelimit >= 2.1 sends it. */
const FLAGGED = "#!lua flags=allow-key-locking\n";

/** A unique key prefix: test files run in parallel against one Redis, so nothing is flushed. */
function prefix(): string {
  return `t:${crypto.randomUUID()}:`;
}

/** A client as the app would build one; auto-pipelining off unless a test wants it. */
function client(
  opts: { url?: string; token?: string; enableAutoPipelining?: boolean } = {},
): Redis {
  return new Redis({
    url: opts.url ?? upstashUrl,
    token: opts.token ?? upstashToken,
    enableTelemetry: false,
    enableAutoPipelining: opts.enableAutoPipelining ?? false,
  });
}

/** POSTs raw JSON to the server, to check the wire format the clients hide. */
async function post(
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<Response> {
  return fetch(`${upstashUrl}${path}`, {
    method: "POST",
    signal,
    headers: {
      authorization: `Bearer ${upstashToken}`,
      "content-type": "application/json",
      ...headers,
    },
    body: JSON.stringify(body),
  });
}

async function sha1Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function scopeStats(scope: string): Promise<{ requests: number; commands: number }> {
  const res = await fetch(`${upstashUrl}/__test/stats?scope=${scope}`);
  return res.json();
}

async function setFault(mode: string, scope: string): Promise<void> {
  const res = await post("/__test/fault", { mode, scope });
  expect(res.status).toBe(200);
}

describe("the @upstash/redis client against the local server", () => {
  it("stores and reads back plain, unicode and control-character strings", async () => {
    const redis = client();
    const p = prefix();
    const values = ["hello", "héllo wörld ✓ 日本語 🚀", "tab\tnew\nline \u0000 nul \u00ff"];
    for (const [i, value] of values.entries()) {
      expect(await redis.set(`${p}${i}`, value)).toBe("OK");
      expect(await redis.get<string>(`${p}${i}`)).toBe(value);
    }
  });

  it("returns numbers as numbers, JSON values as objects and null for a missing key", async () => {
    const redis = client();
    const p = prefix();
    await redis.set(`${p}n`, 41);
    expect(await redis.incr(`${p}n`)).toBe(42);
    expect(await redis.get<number>(`${p}n`)).toBe(42);
    await redis.set(`${p}o`, { a: 1, b: ["x"] });
    expect(await redis.get(`${p}o`)).toEqual({ a: 1, b: ["x"] });
    expect(await redis.get(`${p}missing`)).toBeNull();
  });

  it("reads a hash back as an object", async () => {
    const redis = client();
    const key = `${prefix()}h`;
    expect(await redis.hset(key, { name: "Ada", visits: 3 })).toBe(2);
    expect(await redis.hgetall(key)).toEqual({ name: "Ada", visits: 3 });
    expect(await redis.hget(key, "absent")).toBeNull();
  });

  it("pushes, ranges and pops a list in order", async () => {
    const redis = client();
    const key = `${prefix()}l`;
    expect(await redis.rpush(key, "a", "b", "c")).toBe(3);
    expect(await redis.lrange(key, 0, -1)).toEqual(["a", "b", "c"]);
    expect(await redis.lpop(key)).toBe("a");
    expect(await redis.llen(key)).toBe(2);
  });

  it("runs an explicit pipeline and returns one result per command", async () => {
    const redis = client();
    const p = prefix();
    const results = await redis
      .pipeline()
      .set(`${p}a`, "x")
      .incr(`${p}c`)
      .incr(`${p}c`)
      .get(`${p}a`)
      .get(`${p}nothing`)
      .exec();
    expect(results).toEqual(["OK", 1, 2, "x", null]);
  });

  it("runs a transaction atomically and returns its results", async () => {
    const redis = client();
    const key = `${prefix()}tx`;
    const results = await redis.multi().set(key, 10).incrby(key, 5).get(key).exec();
    expect(results).toEqual(["OK", 15, 15]);
  });

  it("sends the commands issued in one tick as a single pipeline request", async () => {
    const scope = crypto.randomUUID();
    const redis = client({ url: `${upstashUrl}/__scope/${scope}`, enableAutoPipelining: true });
    const p = prefix();
    const writes = await Promise.all([
      redis.set(`${p}a`, "1"),
      redis.set(`${p}b`, "2"),
      redis.incr(`${p}c`),
      redis.hset(`${p}h`, { f: "v" }),
    ]);
    expect(writes).toEqual(["OK", "OK", 1, 1]);
    expect(await scopeStats(scope)).toEqual({ requests: 1, commands: 4 });
    // @upstash/redis 1.39 batches reads apart from writes: one more request for these.
    const reads = await Promise.all([
      redis.get(`${p}a`),
      redis.get(`${p}b`),
      redis.hget(`${p}h`, "f"),
    ]);
    expect(reads).toEqual([1, 2, "v"]);
    expect(await scopeStats(scope)).toEqual({ requests: 2, commands: 7 });
  });

  it("rejects a wrong token with an error the client throws", async () => {
    const redis = client({ token: "not-the-token" });
    await expect(redis.get("anything")).rejects.toThrow(/WRONGPASS|unauthorized/i);
  });

  it("surfaces a Redis error as a thrown error and keeps working afterwards", async () => {
    const redis = client();
    const key = `${prefix()}s`;
    await redis.set(key, "not a number");
    await expect(redis.incr(key)).rejects.toThrow(/not an integer/);
    expect(await redis.get(key)).toBe("not a number");
  });

  it("runs EVAL of a script flagged allow-key-locking", async () => {
    const redis = client();
    const key = `${prefix()}lua`;
    const script = `${FLAGGED}redis.call('SET', KEYS[1], ARGV[1])\nreturn {KEYS[1], redis.call('GET', KEYS[1])}`;
    expect(await redis.eval(script, [key], ["v1"])).toEqual([key, "v1"]);
    // Once seen, the client's SHA of the flagged text is mapped to the script Redis holds.
    expect(await redis.evalsha(await sha1Hex(script), [key], ["v2"])).toEqual([key, "v2"]);
  });

  it("answers NOSCRIPT for a flagged script not seen yet, so the client falls back to EVAL", async () => {
    const redis = client();
    // A body unique to this run: its SHA cannot be known to the server yet.
    const script = `${FLAGGED}-- ${crypto.randomUUID()}\nreturn ARGV[1]`;
    await expect(redis.evalsha(await sha1Hex(script), [], ["x"])).rejects.toThrow(/NOSCRIPT/);
    const wrapped = redis.createScript<string>(script);
    expect(await wrapped.exec([], ["first"])).toBe("first");
    expect(await wrapped.exec([], ["second"])).toBe("second");
  });

  it("lets @upstash/ratelimit's sliding window pass exactly its limit", async () => {
    const scope = crypto.randomUUID();
    const ratelimit = new Ratelimit({
      redis: client({ url: `${upstashUrl}/__scope/${scope}` }),
      limiter: Ratelimit.slidingWindow(3, "10 s"),
      prefix: prefix(),
      timeout: 0,
      ephemeralCache: false,
    });
    let successes = 0;
    for (let i = 0; i < 5; i++) {
      const result = await ratelimit.limit("user-1");
      await result.pending;
      if (result.success) successes += 1;
    }
    expect(successes).toBe(3);
    // At most one NOSCRIPT + EVAL fallback: afterwards its hard-coded EVALSHA hits.
    expect((await scopeStats(scope)).requests).toBeLessThanOrEqual(6);
  });
});

describe("the REST wire format", () => {
  it("base64-encodes every string except OK when Upstash-Encoding is base64", async () => {
    const key = `${prefix()}b64`;
    const set = await post("/", ["SET", key, "hé"], { "Upstash-Encoding": "base64" });
    expect(await set.json()).toEqual({ result: "OK" });
    const res = await post(
      "/pipeline",
      [["GET", key], ["PING"], ["MGET", key, `${key}:none`], ["STRLEN", key]],
      { "Upstash-Encoding": "base64" },
    );
    expect(await res.json()).toEqual([
      { result: "aMOp" },
      { result: "UE9ORw==" },
      { result: ["aMOp", null] },
      { result: 3 },
    ]);
  });

  it("returns plain UTF-8 strings without the encoding header", async () => {
    const key = `${prefix()}plain`;
    await post("/", ["SET", key, "hé"]);
    const res = await post("/", ["GET", key]);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ result: "hé" });
  });

  it("echoes the upstash-sync-token header", async () => {
    const res = await post("/", ["PING"], { "upstash-sync-token": "sync-123" });
    expect(res.headers.get("upstash-sync-token")).toBe("sync-123");
  });

  it("answers 401 with an error body when the token is missing", async () => {
    const res = await fetch(upstashUrl, { method: "POST", body: JSON.stringify(["PING"]) });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: expect.stringMatching(/auth token/) });
  });

  it("answers 400 with the Redis error for a failing single command", async () => {
    const key = `${prefix()}e`;
    await post("/", ["SET", key, "x"]);
    const res = await post("/", ["INCR", key]);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: expect.stringMatching(/^ERR .*not an integer/) });
  });

  it("keeps each pipeline command independent of another's error", async () => {
    const key = `${prefix()}p`;
    const res = await post("/pipeline", [
      ["SET", key, "x"],
      ["INCR", key],
      ["GET", key],
    ]);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual([
      { result: "OK" },
      { error: expect.stringMatching(/not an integer/) },
      { result: "x" },
    ]);
  });

  it("aborts the whole transaction when a queued command is invalid", async () => {
    const key = `${prefix()}abort`;
    const res = await post("/multi-exec", [
      ["SET", key, "x"],
      ["NOSUCHCOMMAND", key],
    ]);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: expect.stringMatching(/^EXECABORT/) });
    expect(await (await post("/", ["EXISTS", key])).json()).toEqual({ result: 0 });
  });

  it("refuses commands that would change the shared connection's state", async () => {
    const res = await post("/", ["SELECT", "1"]);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: expect.stringMatching(/not allowed/) });
  });

  it("accepts the path form of a command", async () => {
    const key = `${prefix()}path`;
    const auth = { authorization: `Bearer ${upstashToken}` };
    const set = await fetch(`${upstashUrl}/set/${encodeURIComponent(key)}/v?EX=60`, {
      headers: auth,
    });
    expect(await set.json()).toEqual({ result: "OK" });
    const ttl = await fetch(`${upstashUrl}/ttl/${encodeURIComponent(key)}`, { headers: auth });
    expect(((await ttl.json()) as { result: number }).result).toBeGreaterThan(0);
  });
});

describe("the test hooks", () => {
  it("counts requests and commands per scope", async () => {
    const scope = crypto.randomUUID();
    await post(`/__scope/${scope}/pipeline`, [["PING"], ["PING"], ["PING"]]);
    await post(`/__scope/${scope}`, ["PING"]);
    expect(await scopeStats(scope)).toEqual({ requests: 2, commands: 4 });
    const reset = await fetch(`${upstashUrl}/__test/reset?scope=${scope}`, { method: "POST" });
    expect(await reset.json()).toEqual({ requests: 0, commands: 0 });
  });

  it("injects a 500 that the client throws, only for the faulted scope", async () => {
    const scope = crypto.randomUUID();
    const redis = client({ url: `${upstashUrl}/__scope/${scope}` });
    await setFault("error500", scope);
    try {
      await expect(redis.get("k")).rejects.toThrow(/injected fault/);
      expect(await client().ping()).toBe("PONG");
    } finally {
      await setFault("none", scope);
    }
    expect(await redis.ping()).toBe("PONG");
  });

  it("hangs a request until the client gives up", async () => {
    const scope = crypto.randomUUID();
    await setFault("hang", scope);
    try {
      const giveUp = new AbortController();
      let pending = true;
      const outcome = post(`/__scope/${scope}`, ["PING"], {}, giveUp.signal).then(
        () => "answered",
        (e: Error) => `gave up: ${e.name}`,
      );
      void outcome.finally(() => {
        pending = false;
      });
      // The server has the request (it counted it) and another request is answered meanwhile,
      // while this one still has no answer: it hangs until the client gives up, not on a timer.
      await expect.poll(() => scopeStats(scope)).toEqual({ requests: 1, commands: 1 });
      expect(await client().ping()).toBe("PONG");
      expect(pending).toBe(true);
      giveUp.abort();
      expect(await outcome).toBe("gave up: AbortError");
    } finally {
      await setFault("none", scope);
    }
  });

  it("closes the connection without a response", async () => {
    const scope = crypto.randomUUID();
    await setFault("close", scope);
    try {
      await expect(post(`/__scope/${scope}`, ["PING"])).rejects.toThrow();
    } finally {
      await setFault("none", scope);
    }
  });
});
