/** @module GET|POST /api/v1/stream: auth, input, limits, then the model's answer as SSE. */
import { type Context, Hono } from "hono";
import { createMiddleware } from "hono/factory";
import { requireAuth } from "../auth/middleware";
import type { Config } from "../config";
import type { AppEnv } from "../env";
import { AppError } from "../errors";
import { type StreamInput, streamInputSchema } from "../input/stream-input";
import { limitBody, requireJsonObject, validateWith } from "../input/validate";
import { ledgerRecord, type StreamOutcome, unspent } from "../ledger/record";
import { writeLedger } from "../ledger/write";
import { clientIp, enforceLimits } from "../limits/middleware";
import { storeFor } from "../limits/select-store";
import { annotate, finishLater } from "../observe/request";
import { maxOutputTokens } from "../stream/cost";
import { MODELS } from "../stream/models";
import type { ProviderStream } from "../stream/providers/provider";
import { providerFor, requireProvider } from "../stream/select-provider";
import { promptOnly, runSession, type StreamSummary } from "../stream/session";

const schemas = new WeakMap<
  Config,
  { query: ReturnType<typeof streamInputSchema>; json: ReturnType<typeof streamInputSchema> }
>();
function schemaFor(config: Config, target: "query" | "json") {
  let pair = schemas.get(config);
  if (!pair) {
    pair = {
      query: streamInputSchema(config.costCapMaxUsd, true),
      json: streamInputSchema(config.costCapMaxUsd, false),
    };
    schemas.set(config, pair);
  }
  return pair[target];
}

/** A cap too small to pay for even one output token is an input error, caught before any spending. */
function checkAffordable(input: StreamInput): void {
  if (maxOutputTokens(MODELS[input.model], input.message, input.cost_cap_usd) < 1) {
    throw new AppError(
      "invalid_input",
      "cost_cap_usd: too low to answer this message with this model",
      {
        fields: ["cost_cap_usd"],
      },
    );
  }
}

const setInput = (target: "query" | "json") =>
  validateWith(
    target,
    (c) => schemaFor(c.get("config"), target),
    (c, input) => {
      checkAffordable(input);
      c.set("streamInput", input);
    },
  );

const SSE_HEADERS = {
  "Content-Type": "text/event-stream; charset=utf-8",
  "Cache-Control": "no-store",
  "X-Accel-Buffering": "no",
};

/**
 * Hono routes HEAD to the GET handler and drops the body: that would run, and bill, a stream
 * nobody reads. Checked before authentication, like any other wrong method.
 */
const refuseHead = createMiddleware<AppEnv>(async function refuseHead(c, next) {
  if (c.req.raw.method === "HEAD") {
    throw new AppError("method_not_allowed", "use GET or POST", {
      headers: { Allow: "GET, POST, OPTIONS" },
    });
  }
  await next();
});

/** The stream route: everything before the handler can refuse; nothing is spent until limits pass. */
export const streamRoutes = new Hono<AppEnv>()
  // Hono answers HEAD with the GET handler minus the body: that would run (and bill) a stream.
  .get(
    "/",
    refuseHead,
    requireAuth(),
    setInput("query"),
    requireProvider,
    clientIp,
    enforceLimits,
    (c) => stream(c),
  )
  .post(
    "/",
    requireAuth(),
    limitBody,
    requireJsonObject,
    setInput("json"),
    requireProvider,
    clientIp,
    enforceLimits,
    (c) => stream(c),
  );

/** Status for a client that left before its stream started (nginx's "client closed request"). */
const CLIENT_CLOSED = 499;

async function stream(c: Context<AppEnv>): Promise<Response> {
  const { config, streamInput: input, principal, limits, log } = c.var;
  const model = MODELS[input.model];
  const streamId = input.stream_id ?? crypto.randomUUID();
  const startedAt = Date.now();
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
  const record = async (summary: StreamOutcome, provider: string) => {
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
    await writeLedger(
      store,
      ledgerRecord(summary, {
        streamId,
        userKey: principal.key,
        model: model.id,
        provider,
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
  let upstream: ProviderStream;
  try {
    upstream = await provider.open({
      model,
      message: input.message,
      // From the effective cap: the least of cost_cap_usd and what every budget has left.
      maxTokens: limits.maxTokens,
      signal: upstreamAbort.signal,
    });
  } catch (e) {
    forgetClient();
    if (upstreamAbort.signal.aborted) {
      // The client left while the upstream was answering: the prompt may be billed, so it is
      // recorded and the quota stays spent, as for any stream the client walks away from.
      c.executionCtx.waitUntil(record(promptOnly(model, input.message, startedAt), provider.id));
      return new Response(null, { status: CLIENT_CLOSED });
    }
    // The upstream refused or failed before answering: the quota comes back, and a record of
    // nothing spent settles the hold.
    c.executionCtx.waitUntil(limits.refund().catch(() => {}));
    c.executionCtx.waitUntil(record(unspent("upstream_error", startedAt), provider.id));
    throw e;
  }
  annotate(c.req.raw, { upstream_ttfb_ms: Date.now() - startedAt, model: model.id });

  const quota = limits.quota;
  const session = runSession(upstream, {
    streamId,
    model,
    message: input.message,
    capMicroUsd: limits.capMicroUsd,
    heartbeatMs: config.heartbeatIntervalMs,
    maxDurationMs: config.streamMaxDurationMs,
    idleTimeoutMs: config.upstreamIdleTimeoutMs,
    startedAt,
    upstreamAbort,
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
      await record(summary, upstream.provider);
    }),
  );

  return new Response(session.body, {
    status: 200,
    headers: { ...SSE_HEADERS, ...limits.headers, "X-Stream-Id": streamId },
  });
}
