/**
 * @module The floor: a bare Worker that forwards the request to the upstream and re-frames its
 * SSE as `message_chunk` events. No auth, limits, metering or ledger: what is left is what the
 * runtime itself costs. Its /store-trip/ variant adds one store round trip, its /do-trip/ variant
 * one call of a trivial Durable Object method, /do-write-trip/ one that writes a row.
 */
import type { FloorTrip } from "./trip-object";

export { FloorTrip } from "./trip-object";

interface FloorEnv {
  UPSTREAM_URL: string;
  /** The trivial Durable Object of the do-trip variant. */
  TRIP: DurableObjectNamespace<FloorTrip>;
  /** An Upstash-compatible REST endpoint and its token, for the store-trip variant. */
  STORE_URL?: string;
  STORE_TOKEN?: string;
}

export default {
  async fetch(req: Request, env: FloorEnv): Promise<Response> {
    const { pathname } = new URL(req.url);
    if (pathname === "/healthz") return Response.json({ status: "ok" });
    // Under /store-trip/: one store round trip (a PING) before the upstream, the least any
    // gateway that enforces limits pays. The bench measures it in each runtime, so the gateway's
    // own work is what it adds over this variant.
    if (pathname.startsWith("/store-trip") && env.STORE_URL) {
      const trip = await fetch(env.STORE_URL, {
        method: "POST",
        headers: { Authorization: `Bearer ${env.STORE_TOKEN}` },
        body: '["PING"]',
      });
      if (!trip.ok) return new Response("store error", { status: 502 });
      await trip.text();
    }
    // Under /do-trip/: one call of a trivial Durable Object method, one object per client
    // address (as the gateway's store asks the caller's own object): the least the Durable
    // Object store pays.
    if (pathname.startsWith("/do-trip")) {
      const key = req.headers.get("cf-connecting-ip") ?? "floor";
      await env.TRIP.get(env.TRIP.idFromName(key)).ping();
    }
    // Under /do-write-trip/: the same call, but the method writes one row first.
    if (pathname.startsWith("/do-write-trip")) {
      const key = req.headers.get("cf-connecting-ip") ?? "floor";
      await env.TRIP.get(env.TRIP.idFromName(key)).count();
    }
    const { message } = (await req.json()) as { message: string };
    const upstream = await fetch(`${env.UPSTREAM_URL}/chat/completions`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: "Bearer floor" },
      body: JSON.stringify({
        model: "gpt-4o-mini",
        stream: true,
        messages: [{ role: "user", content: message }],
      }),
      signal: req.signal,
    });
    if (!upstream.ok || !upstream.body) return new Response("upstream error", { status: 502 });
    const decoder = new TextDecoder();
    const encoder = new TextEncoder();
    let buffer = "";
    let id = 0;
    const reframe = new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, out) {
        buffer += decoder.decode(chunk, { stream: true });
        const events = buffer.split("\n\n");
        buffer = events.pop() ?? "";
        for (const event of events) {
          const data = event.startsWith("data: ") ? event.slice(6) : "";
          if (data === "" || data === "[DONE]") continue;
          const content = (JSON.parse(data) as { choices?: { delta?: { content?: string } }[] })
            .choices?.[0]?.delta?.content;
          if (content) {
            const frame = `id: ${++id}\nevent: message_chunk\ndata: ${JSON.stringify({ content })}\n\n`;
            out.enqueue(encoder.encode(frame));
          }
        }
      },
      flush(out) {
        out.enqueue(encoder.encode(`id: ${++id}\nevent: done\ndata: {}\n\n`));
      },
    });
    return new Response(upstream.body.pipeThrough(reframe), {
      headers: { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store" },
    });
  },
};
