/**
 * @module Resumable streams across a restart of the Worker (issue 21: "a deploy restarts the
 * Worker: the stream's state lives where all of them reach it"). A real `wrangler dev` runs
 * streams against a fake upstream; its process is stopped entirely, and a new one starts on the
 * same `--persist-to` directory (the same local state, new isolates, a new port). A resume of a
 * stream that had ended gets the rest of it, exactly; a resume of a stream that was live when
 * the Worker stopped ends with `error` instead of hanging.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openEvents, type SseEvent } from "../helpers/sse";
import { type FakeUpstream, startFakeUpstream } from "../support/fake-upstream";
import { type DevServer, startWranglerDev } from "./dev-server";

let upstream: FakeUpstream;
let persist: string;
let server: DevServer | undefined;

/** The same vars for every server on `persist`: the same signing key, so tokens stay valid. */
let vars: Record<string, string>;

beforeAll(async () => {
  upstream = await startFakeUpstream();
  persist = await mkdtemp(join(tmpdir(), "resume-restart-state-"));
  vars = {
    SECRET_KEY: randomBytes(32).toString("base64url"),
    OPENAI_API_KEY: "sk-test",
    OPENAI_BASE_URL: `${upstream.url}/v1`,
    ANON_SESSIONS_PER_IP_HOURLY: "100",
  };
  server = await startWranglerDev(vars, 45_000, { persist });
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await upstream?.close();
  if (persist) await rm(persist, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const live = () => {
  if (!server) throw new Error("no server");
  return server;
};

/** Stops the dev server's whole process group, then starts a new one on the same state. */
async function restart(): Promise<void> {
  await live().stop();
  server = undefined;
  server = await startWranglerDev(vars, 45_000, { persist });
}

async function mint(): Promise<string> {
  const res = await fetch(`${live().url}/api/v1/anon_session`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: "{}",
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
}

/** GET /api/v1/stream with this `stream_id` and `message`. */
function start(token: string, streamId: string, message: string): Promise<Response> {
  const q = new URLSearchParams({ message, stream_id: streamId });
  return fetch(`${live().url}/api/v1/stream?${q}`, {
    headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" },
  });
}

/** GET /api/v1/streams/{id} after event `after`. */
function resume(token: string, streamId: string, after: number): Promise<Response> {
  return fetch(`${live().url}/api/v1/streams/${streamId}`, {
    headers: {
      Authorization: `Bearer ${token}`,
      Accept: "text/event-stream",
      ...(after > 0 ? { "Last-Event-ID": String(after) } : {}),
    },
    signal: AbortSignal.timeout(15_000),
  });
}

const kept = (events: SseEvent[]) => events.filter((e) => e.event !== "heartbeat");
/** An event without what differs between two runs of the same answer. */
function comparable(e: SseEvent) {
  if (e.event !== "done") return e;
  const { ttft_ms: _t, duration_ms: _d, stream_id: _s, quota: _q, ...rest } = e.data;
  return { id: e.id, event: e.event, data: rest };
}

/** Reads `n` events of `res` (heartbeats not counted), then leaves (cancels the body). */
async function firstEvents(res: Response, n: number): Promise<SseEvent[]> {
  expect(res.status).toBe(200);
  const reader = openEvents(res);
  const out: SseEvent[] = [];
  while (out.length < n) {
    const e = await reader.next();
    if (e === null) break;
    if (e.event !== "heartbeat") out.push(e);
  }
  await reader.cancel();
  return out;
}

/** The stream's `stream_end` log line on the current server, polled (≈10 s). */
async function streamEnd(streamId: string): Promise<Record<string, unknown> | undefined> {
  for (let i = 0; i < 100; i++) {
    const line = live()
      .logLines()
      .find((l) => l.event === "stream_end" && l.stream_id === streamId);
    if (line) return line;
    await sleep(100);
  }
  return undefined;
}

const newId = () => `r-${randomBytes(6).toString("hex")}`;

describe("resumable streams across a restart of the Worker", () => {
  it("resumes a stream that ended before the restart: the rest, exactly, then done", async () => {
    const token = await mint();
    const message = "Count for me [[fake tokens=30 delay=10]]";
    // The undisturbed answer to the same question, for comparison.
    const whole = kept(await openEvents(await start(token, newId(), message)).rest());
    expect(whole.at(-1)?.event).toBe("done");
    const n = 8;
    expect(whole.length).toBeGreaterThan(n + 2);

    // The reader takes the first n events and leaves; the stream runs on to its end (the grace).
    const id = newId();
    const head = await firstEvents(await start(token, id, message), n);
    expect(head.map(comparable)).toEqual(whole.slice(0, n).map(comparable));
    expect((await streamEnd(id))?.finish_reason).toBe("stop");

    await restart();

    const res = await resume(token, id, n);
    expect(res.status).toBe(200);
    const rest = await openEvents(res).rest();
    expect(rest.map(comparable)).toEqual(whole.slice(n).map(comparable));
    expect(rest.at(-1)?.event).toBe("done");
    expect(rest.at(-1)?.data.stream_id).toBe(id);
    // Joined: every event once, in order, ids 1..N.
    const joined = [...head, ...rest];
    expect(joined.map(comparable)).toEqual(whole.map(comparable));
    expect(joined.map((e) => Number(e.id))).toEqual(joined.map((_, i) => i + 1));
    // From the start, the new server gives exactly what the two readers joined; past the end, 204.
    expect(await openEvents(await resume(token, id, 0)).rest()).toEqual(joined);
    expect((await resume(token, id, joined.length)).status).toBe(204);
  }, 90_000);

  it("a stream that was live when the Worker stopped: a resume ends with error, not a hang", async () => {
    const token = await mint();
    // 200 tokens 50 ms apart: about 10 s, far from its end when the Worker stops.
    const id = newId();
    const res = await start(token, id, "Count slowly [[fake tokens=200 delay=50]]");
    expect(res.status).toBe(200);
    const reader = openEvents(res);
    const seen: SseEvent[] = [];
    // Past the first batch (written at most 1 s after its first frame), and some more.
    const until = Date.now() + 1_800;
    while (Date.now() < until) {
      const e = await reader.next();
      if (e === null) break;
      if (e.event !== "heartbeat") seen.push(e);
    }
    expect(seen.at(-1)?.event).toBe("message_chunk");
    const lastSeen = Number(seen.at(-1)?.id);

    await restart();
    await reader.cancel().catch(() => {});

    // From the last event this reader had (which may be past what was stored): the error.
    const after = await resume(token, id, lastSeen);
    expect(after.status).toBe(200);
    const tail = await openEvents(after).rest();
    expect(tail.at(-1)?.event).toBe("error");
    expect(tail.at(-1)?.data.error_code).toBe("upstream_error");
    expect(Number(tail.at(-1)?.id)).toBeGreaterThan(lastSeen);
    expect(tail.every((e) => Number(e.id) > lastSeen)).toBe(true);

    // From the start: what was stored of it, then the same error; its text is what this reader saw.
    const all = await openEvents(await resume(token, id, 0)).rest();
    expect(all.at(-1)).toEqual(tail.at(-1));
    const stored = all.slice(0, -1);
    expect(stored.length).toBeGreaterThan(0);
    expect(stored).toEqual(seen.slice(0, stored.length));
    expect((await resume(token, id, Number(all.at(-1)?.id))).status).toBe(204);
  }, 90_000);
});
