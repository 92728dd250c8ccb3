/**
 * @module GET and DELETE /api/v1/streams/{stream_id}: resume a stream from after an event id,
 * or stop it; and the resume by the original GET /api/v1/stream URL with `Last-Event-ID`, which
 * is what EventSource sends when it reconnects by itself. A resume spends no stream limit, quota
 * or budget: it counts as a read in RATE_LIMIT_USAGE, like /api/v1/usage.
 */
import { type Context, Hono } from "hono";
import { createMiddleware } from "hono/factory";
import { requireAuth } from "../auth/middleware";
import type { AppEnv } from "../env";
import { AppError } from "../errors";
import { STREAM_ID } from "../input/stream-input";
import { clientIp } from "../limits/address";
import { passWindow } from "../limits/refusals";
import { storeFor } from "../limits/select-store";
import { annotate } from "../observe/access-log";
import { detached, resumeOwned, stopOwned } from "../stream/owner-client";
import { nativeSse } from "../stream/wire";

const EVENT_ID = /^\d{1,15}$/;
/** Another principal's stream, an unknown one and an expired one all look alike. */
const notFound = () => new AppError("not_found", "no such stream");

/** The event id a reader had: `Last-Event-ID`, else `?after=`, else 0 (from the first event). */
function afterOf(c: Context<AppEnv>): number {
  const given = c.req.header("Last-Event-ID") ?? c.req.query("after");
  if (given === undefined || given.trim() === "") return 0;
  if (!EVENT_ID.test(given.trim())) {
    throw new AppError("invalid_input", "after: must be an event id (a whole number)", {
      fields: ["after"],
    });
  }
  return Number(given.trim());
}

/** Resumes `streamId` of the caller after `after`: 200 with the rest, 204 past the end, or 404. */
async function resume(c: Context<AppEnv>, streamId: string, after: number): Promise<Response> {
  const [config, principal] = [c.get("config"), c.get("principal")];
  const spec = config.rateLimitUsage;
  const headers = passWindow(
    await storeFor(config, c.env).hitUsageRead(principal.key),
    Date.now(),
    "rate_limited",
    `resumes and usage reads limited to ${spec.limit} per ${spec.windowMs / 1000} s`,
  );
  if (config.streamResumeTtlS === 0 || !STREAM_ID.test(streamId)) throw notFound();
  annotate(c.req.raw, { stream_id: streamId, resume_after: after });
  const answer = await resumeOwned(c, streamId, after);
  if (answer.kind === "unknown") throw notFound();
  const all = { ...nativeSse.headers, ...headers, "X-Stream-Id": streamId };
  // 204 tells EventSource to stop reconnecting.
  if (answer.kind === "past_end") return new Response(null, { status: 204, headers: all });
  return new Response(detached(answer.body, answer.leave), { status: 200, headers: all });
}

/**
 * On GET /api/v1/stream: a request with `Last-Event-ID` and a `stream_id` resumes that stream
 * instead of starting one (EventSource reconnecting by itself).
 */
export const resumeByLastEventId = createMiddleware<AppEnv>(
  async function resumeByLastEventId(c, next) {
    const streamId = c.req.query("stream_id");
    if (c.req.header("Last-Event-ID") === undefined || streamId === undefined) return next();
    c.res = await resume(c, streamId, afterOf(c));
  },
);

/** Refuses HEAD, which would open a reader nobody reads. */
const refuseHead = createMiddleware<AppEnv>(async function refuseHead(c, next) {
  if (c.req.raw.method === "HEAD") throw wrongMethod();
  await next();
});
const wrongMethod = () =>
  new AppError("method_not_allowed", "use GET or DELETE", {
    headers: { Allow: "GET, DELETE, OPTIONS" },
  });

/** The streams routes. */
export const streamsRoutes = new Hono<AppEnv>()
  .get("/:id", refuseHead, requireAuth(), clientIp, (c) => resume(c, c.req.param("id"), afterOf(c)))
  .delete("/:id", requireAuth(), async (c) => {
    const streamId = c.req.param("id");
    if (c.get("config").streamResumeTtlS === 0 || !STREAM_ID.test(streamId)) throw notFound();
    if ((await stopOwned(c, streamId)) === "unknown") throw notFound();
    return c.body(null, 204, { "Cache-Control": "no-store" });
  })
  .all("/:id", (c) => {
    if (c.req.method === "OPTIONS") return c.body(null, 204, { Allow: "GET, DELETE, OPTIONS" });
    throw wrongMethod();
  });
