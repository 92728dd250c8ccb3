/**
 * @module The stream stage, the last of every stream surface: runs the admitted stream
 * (admitted.ts) through the surface's wire format, here in the request (the direct path) or,
 * for a resumable surface, in the stream's owner (owner-client.ts).
 */
import type { Context } from "hono";
import type { AppEnv } from "../env";
import { AppError } from "../errors";
import { storeFor } from "../limits/select-store";
import { annotate, finishLater } from "../observe/access-log";
import { accessFields, runAdmitted, stageVars } from "./admitted";
import { ownedStream } from "./owner-client";

/** Status for a client that left before its stream started (nginx's "client closed request"). */
const CLIENT_CLOSED = 499;

/** Runs the validated request `streamInput` as a stream in the wire format `wire`. */
export async function streamAnswer(c: Context<AppEnv>): Promise<Response> {
  const [config, input, principal, limits, log, wire] = stageVars(c);
  if (wire.resumable && config.streamResumeTtlS > 0) return ownedStream(c);
  const { streamId } = input;
  const upstreamAbort = new AbortController();
  // enable_request_signal: fires when the client disconnects.
  const clientSignal = c.req.raw.signal;
  const onClientGone = () => upstreamAbort.abort("client_abort");
  clientSignal?.addEventListener("abort", onClientGone, { once: true });
  if (clientSignal?.aborted) upstreamAbort.abort("client_abort");
  // Once the stream has its summary, a disconnect changes nothing: the listener goes, so the
  // request's signal keeps nothing of the stream alive.
  const forgetClient = () => clientSignal?.removeEventListener("abort", onClientGone);

  let started: Awaited<ReturnType<typeof runAdmitted>>;
  try {
    started = await runAdmitted({
      config,
      store: storeFor(config, c.env),
      log,
      input,
      userKey: principal.key,
      grant: limits,
      encode: wire.encoder(input, limits.hold.at),
      upstreamAbort,
      report: (fields) => annotate(c.req.raw, fields),
      waitUntil: (work) => c.executionCtx.waitUntil(work),
    });
  } catch (e) {
    forgetClient();
    throw e;
  }
  if (started.kind === "gone") {
    forgetClient();
    return new Response(null, { status: CLIENT_CLOSED });
  }
  const { session } = started;
  void session.finished.then(forgetClient, forgetClient);
  // The access line and the metrics wait for the stream's own figures.
  finishLater(
    c.req.raw,
    session.finished.then((summary) => accessFields(streamId, summary)),
  );

  const headers = { ...wire.headers, ...limits.headers, "X-Stream-Id": streamId };
  if (wire.buffered) {
    const summary = await session.finished;
    if (summary.finishReason === "upstream_error" || summary.finishReason === "client_abort") {
      void session.body.cancel().catch(() => {});
      if (summary.finishReason === "client_abort")
        return new Response(null, { status: CLIENT_CLOSED });
      throw new AppError(
        "upstream_error",
        "the model provider failed before the answer was complete",
      );
    }
  }
  return new Response(session.body, { status: 200, headers });
}
