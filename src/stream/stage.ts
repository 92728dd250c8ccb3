/**
 * @module The stream stage, the last of every stream surface: opens the upstream, runs the
 * session through the surface's wire format, gives the quota back or records the ledger.
 */
import type { Context } from "hono";
import type { AppEnv } from "../env";
import { AppError } from "../errors";
import { ledgerRecord, type StreamOutcome, unspent } from "../ledger/record";
import { writeLedger } from "../ledger/write";
import { storeFor } from "../limits/select-store";
import { annotate, finishLater } from "../observe/request";
import type { ProviderStream } from "./providers/provider";
import { providerFor } from "./select-provider";
import { promptOnly, runSession } from "./session";

/** Status for a client that left before its stream started (nginx's "client closed request"). */
const CLIENT_CLOSED = 499;

/** Runs the validated request `streamInput` as a stream in the wire format `wire`. */
export async function streamAnswer(c: Context<AppEnv>): Promise<Response> {
  // c.get, not c.var: hono builds a fresh object of every variable on each c.var read.
  const [config, input, principal, limits, log, wire] = [
    c.get("config"),
    c.get("streamInput"),
    c.get("principal"),
    c.get("limits"),
    c.get("log"),
    c.get("wire"),
  ];
  const { model, prompt, streamId } = input;
  // The effective cap: the least of the request's cap and what every budget has left, as the
  // limits store decided it. Its hold is what the meter stops at; max_tokens derives from it.
  const { capMicroUsd, maxTokens } = limits;
  // From the admission on: the max duration counts from the moment the hold was taken, so the
  // stream ends (and settles) before the hold, which lives a minute longer, can expire.
  const startedAt = limits.hold.at;
  const store = storeFor(config, c.env);
  const upstreamAbort = new AbortController();
  // enable_request_signal: fires when the client disconnects.
  const clientSignal = c.req.raw.signal;
  const onClientGone = () => upstreamAbort.abort("client_abort");
  clientSignal?.addEventListener("abort", onClientGone, { once: true });
  // Once the stream has its summary, a disconnect changes nothing: the listener goes, so the
  // request's signal keeps nothing of the stream alive.
  const forgetClient = () => clientSignal?.removeEventListener("abort", onClientGone);

  /** Logs the stream's end and writes its ledger record (after the response). */
  const record = async (summary: StreamOutcome, provider: string, upstreamModel?: string) => {
    log.info("stream_end", {
      stream_id: streamId,
      model: model.id,
      provider,
      finish_reason: summary.finishReason,
      input_tokens: summary.inputTokens,
      output_tokens: summary.outputTokens,
      cost_usd: summary.costMicroUsd / 1e6,
      ttft_ms: summary.ttftMs,
      duration_ms: summary.durationMs,
    });
    if (summary.costMicroUsd > limits.hold.microUsd) {
      // Only the provider's own usage can pass the hold (an upstream that ignored max_tokens):
      // the budget is overspent by the difference, which an operator must hear of.
      log.warn("cost_over_hold", {
        stream_id: streamId,
        provider,
        cost_micro_usd: summary.costMicroUsd,
        hold_micro_usd: limits.hold.microUsd,
      });
    }
    await writeLedger(
      store,
      ledgerRecord(summary, {
        streamId,
        userKey: principal.key,
        model: model.id,
        provider,
        ...(upstreamModel ? { upstreamModel } : {}),
        startedAt,
        hold: limits.hold,
      }),
      log,
    );
  };

  const provider = providerFor(config);
  if (clientSignal?.aborted) {
    // Gone during the limit checks: the upstream is never called, so nothing was spent; the
    // record of nothing settles the hold.
    forgetClient();
    c.executionCtx.waitUntil(limits.refund().catch(() => {}));
    c.executionCtx.waitUntil(record(unspent("client_abort", startedAt), provider.id));
    return new Response(null, { status: CLIENT_CLOSED });
  }
  // The max duration also bounds the wait for the upstream's headers: an upstream that answers
  // late must not start a stream whose hold has expired.
  const openDeadline = setTimeout(
    () => upstreamAbort.abort("max_duration"),
    Math.max(0, startedAt + config.streamMaxDurationMs - Date.now()),
  );
  let upstream: ProviderStream;
  try {
    upstream = await provider.open({
      model,
      prompt,
      maxTokens,
      sampling: input.sampling,
      ...(input.tooling ? { tooling: input.tooling } : {}),
      signal: upstreamAbort.signal,
      capMicroUsd,
      clientMaxTokens: input.maxTokens,
      report: (fields) => annotate(c.req.raw, fields),
    });
  } catch (e) {
    clearTimeout(openDeadline);
    forgetClient();
    if (upstreamAbort.signal.reason === "max_duration") {
      // Asked and never answered within the max duration: the provider may still bill the
      // prompt (and hidden reasoning), so its bound is recorded; the quota unit comes back.
      const summary = promptOnly(
        model,
        prompt,
        startedAt,
        maxTokens,
        "upstream_error",
        input.tooling,
      );
      c.executionCtx.waitUntil(limits.refund().catch(() => {}));
      c.executionCtx.waitUntil(record(summary, provider.id));
      throw new AppError("upstream_error", "the model provider did not answer in time", {
        cause: e,
      });
    }
    if (upstreamAbort.signal.aborted) {
      // The client left while the upstream was answering: the prompt may be billed, so it is
      // recorded and the quota stays spent, as for any stream the client walks away from.
      c.executionCtx.waitUntil(
        record(
          promptOnly(model, prompt, startedAt, maxTokens, "client_abort", input.tooling),
          provider.id,
        ),
      );
      return new Response(null, { status: CLIENT_CLOSED });
    }
    // The upstream refused or failed before answering: the quota comes back, and a record of
    // nothing spent settles the hold.
    c.executionCtx.waitUntil(limits.refund().catch(() => {}));
    c.executionCtx.waitUntil(record(unspent("upstream_error", startedAt), provider.id));
    throw e;
  }
  clearTimeout(openDeadline);
  annotate(c.req.raw, { upstream_ttfb_ms: Date.now() - startedAt, model: model.id });

  const quota = limits.quota;
  const session = runSession(upstream, {
    streamId,
    // The answering target's prices: the stream is metered and recorded at them.
    model: upstream.model ?? model,
    prompt,
    ...(input.tooling ? { tooling: input.tooling } : {}),
    capMicroUsd,
    maxTokens: upstream.maxTokens ?? maxTokens,
    heartbeatMs: config.heartbeatIntervalMs,
    maxDurationMs: config.streamMaxDurationMs,
    idleTimeoutMs: config.upstreamIdleTimeoutMs,
    // A reasoning model may think in silence for as long as the stream may last.
    firstTokenTimeoutMs: model.reasoning
      ? config.streamMaxDurationMs
      : config.upstreamFirstTokenTimeoutMs,
    startedAt,
    upstreamAbort,
    encode: wire.encoder(input, startedAt),
    doneExtras: quota
      ? {
          quota: {
            hourly_remaining: quota.hourly.remaining,
            total_remaining: quota.total.remaining,
          },
        }
      : undefined,
  });

  // The access line and the metrics wait for the stream's own figures.
  finishLater(
    c.req.raw,
    session.finished.then((summary) => ({
      stream_id: streamId,
      finish_reason: summary.finishReason,
      input_tokens: summary.inputTokens,
      output_tokens: summary.outputTokens,
      cost_micro_usd: summary.costMicroUsd,
      ttft_ms: summary.ttftMs,
      stream_duration_ms: summary.durationMs,
    })),
  );
  c.executionCtx.waitUntil(
    session.finished.then(async (summary) => {
      forgetClient();
      if (summary.failedBeforeFirstToken) await limits.refund().catch(() => {});
      await record(summary, upstream.provider, upstream.upstreamModel);
    }),
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
