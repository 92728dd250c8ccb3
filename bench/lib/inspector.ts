/**
 * @module The JavaScript heap of a Worker through the V8 inspector (Chrome DevTools Protocol):
 * force a garbage collection, then read the heap's used size. RSS alone cannot tell a leak from
 * the heap V8 keeps after it grew; the used heap after a full GC can. Needs a runtime whose
 * inspector nobody else holds (the `miniflare` runtime; `wrangler dev`'s relay holds its own).
 */

interface Pending {
  resolve(value: Record<string, unknown>): void;
  reject(error: Error): void;
}

/** Live heap objects by kind (`type:constructor name`): how many and their own bytes. */
export type HeapCensus = Map<string, { count: number; bytes: number }>;

export interface HeapProbe {
  /** Collects garbage, then returns the used and total JS heap in MiB. */
  heapAfterGc(): Promise<{ usedMib: number; totalMib: number }>;
  /** Takes a heap snapshot (a full collection first) and counts its objects by kind. */
  census(): Promise<HeapCensus>;
  close(): void;
}

/** What grew between two censuses, biggest first. */
export function censusGrowth(
  before: HeapCensus,
  after: HeapCensus,
  top = 12,
): { kind: string; count: number; kib: number }[] {
  return [...after.entries()]
    .map(([kind, v]) => {
      const b = before.get(kind) ?? { count: 0, bytes: 0 };
      return { kind, count: v.count - b.count, kib: Math.round((v.bytes - b.bytes) / 102.4) / 10 };
    })
    .filter((x) => x.count > 0 && x.kib > 0)
    .sort((a, b) => b.kib - a.kib)
    .slice(0, top);
}

/** An open connection to the user Worker's isolate through the inspector on `port`. */
export async function inspectorSocket(port: number): Promise<WebSocket> {
  const targets = (await (
    await fetch(`http://127.0.0.1:${port}/json/list`, { signal: AbortSignal.timeout(5_000) })
  ).json()) as { id: string; webSocketDebuggerUrl: string }[];
  const target = targets.find((t) => t.id.startsWith("core:user:")) ?? targets[0];
  if (!target) throw new Error("the inspector lists no Worker");
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve(), { once: true });
    ws.addEventListener("error", () => reject(new Error("inspector connection failed")), {
      once: true,
    });
  });
  return ws;
}

/** Connects to the inspector on `port` and attaches to the user Worker's isolate. */
export async function connectHeapProbe(port: number): Promise<HeapProbe> {
  const ws = await inspectorSocket(port);
  let next = 0;
  const pending = new Map<number, Pending>();
  let chunks: string[] | null = null;
  ws.addEventListener("message", (event) => {
    const msg = JSON.parse(String(event.data)) as {
      id?: number;
      method?: string;
      params?: { chunk?: string };
      result?: Record<string, unknown>;
      error?: { message: string };
    };
    if (msg.method === "HeapProfiler.addHeapSnapshotChunk") {
      chunks?.push(msg.params?.chunk ?? "");
      return;
    }
    const waiter = msg.id === undefined ? undefined : pending.get(msg.id);
    if (!waiter || msg.id === undefined) return;
    pending.delete(msg.id);
    if (msg.error) waiter.reject(new Error(msg.error.message));
    else waiter.resolve(msg.result ?? {});
  });
  const call = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const id = ++next;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
      setTimeout(() => {
        if (pending.delete(id)) reject(new Error(`${method}: no answer`));
      }, 60_000);
    });
  await call("HeapProfiler.enable");
  return {
    async heapAfterGc() {
      // HeapProfiler.collectGarbage goes unanswered (and uncollected) in workerd; a heap snapshot
      // always starts with a full collection. Its chunks are discarded as they arrive.
      await call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
      const usage = await call("Runtime.getHeapUsage");
      return {
        usedMib: Number(usage.usedSize) / 1048576,
        totalMib: Number(usage.totalSize) / 1048576,
      };
    },
    async census() {
      chunks = [];
      await call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
      const snapshot = JSON.parse(chunks.join("")) as {
        snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
        nodes: number[];
        strings: string[];
      };
      chunks = null;
      const fields = snapshot.snapshot.meta.node_fields;
      const types = snapshot.snapshot.meta.node_types[0];
      const [width, type, name, size] = [
        fields.length,
        fields.indexOf("type"),
        fields.indexOf("name"),
        fields.indexOf("self_size"),
      ];
      const out: HeapCensus = new Map();
      for (let i = 0; i < snapshot.nodes.length; i += width) {
        const kind =
          `${types[snapshot.nodes[i + type] as number]}:${snapshot.strings[snapshot.nodes[i + name] as number]}`.slice(
            0,
            80,
          );
        const entry = out.get(kind) ?? { count: 0, bytes: 0 };
        entry.count++;
        entry.bytes += snapshot.nodes[i + size] as number;
        out.set(kind, entry);
      }
      return out;
    },
    close: () => ws.close(),
  };
}
