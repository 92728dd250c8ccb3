/**
 * @module The calls on a stream that already runs (api.md, "Resumable streams"): resume it from
 * an event id, and stop it on the server. Both carry the same bearer as the stream itself.
 */
import { type Authed, authedFetch } from "./api";

const streamUrl = (streamId: string) => `/api/v1/streams/${encodeURIComponent(streamId)}`;

/**
 * GET /api/v1/streams/{id}: the events after `after` (the last one the page has), then the live
 * ones to the terminal event. 404: the server no longer has it; 204: nothing after `after`.
 */
export function resumeStream(
  streamId: string,
  after: number,
  signal: AbortSignal,
): Promise<Authed> {
  const headers: Record<string, string> = { Accept: "text/event-stream" };
  if (after > 0) headers["Last-Event-ID"] = String(after);
  return authedFetch(streamUrl(streamId), { headers, signal, cache: "no-store" });
}

/**
 * DELETE /api/v1/streams/{id}: the server cancels the upstream at once (`finish_reason`
 * `stopped`). Without it a stream whose reader left runs on for the orphan grace, waiting for a
 * reconnect. `keepalive`: it still goes out when the page is being closed. Never throws.
 */
export async function stopStream(streamId: string): Promise<boolean> {
  try {
    const { res } = await authedFetch(streamUrl(streamId), {
      method: "DELETE",
      headers: { Accept: "application/json" },
      keepalive: true,
      cache: "no-store",
    });
    await res.body?.cancel().catch(() => {});
    return res.ok;
  } catch {
    return false;
  }
}
