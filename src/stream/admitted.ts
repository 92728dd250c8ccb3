/**
 * @module A stream after its admission, the one place of its money rules: opens the upstream
 * within the max duration, runs the session, gives the quota back or records the ledger, once.
 * The direct path (stage.ts) and the stream owner (owner.ts) both run a stream through it.
 */
import type { Context } from "hono";
import type { Config } from "../config";
import type { AppEnv } from "../env";
import { AppError } from "../errors";
import type { StreamRequest } from "../input/request";
import { ledgerRecord, type StreamOutcome, unspent } from "../ledger/record";
import { writeLedger } from "../ledger/write";
import type { HoldTicket } from "../limits/budget";
import type { LimitStore, QuotaResult } from "../limits/store";
import type { LogFields, Logger } from "../observe/log";
import type { Encoder } from "./frames";
import type { ProviderStream } from "./providers/provider";
import { providerFor } from "./select-provider";
import { promptOnly, runSession, type StreamSummary } from "./session";

/** What the admission granted a stream: its cap, its hold, its quota and how to give it back. */
export interface StreamGrant {
  capMicroUsd: number;
  maxTokens: number;
  hold: HoldTicket;
  quota: QuotaResult | null;
  /** Gives the quota unit back (idempotent); a no-op for signed-in users. */
  refund: () => Promise<void>;
}

/** One admitted stream and what it runs with. */
export interface Admitted {
  config: Config;
  store: LimitStore;
  log: Logger;
  input: StreamRequest;
  userKey: string;
  grant: StreamGrant;
  encode: Encoder;
  /** Aborting it cancels the upstream (a client gone before the upstream was called: not called). */
  upstreamAbort: AbortController;
  /** Fields for the request's access line (the route's attempts, the first byte's latency). */
  report: (fields: LogFields) => void;
  /** Keeps background work (the refund, the record) running past the response. */
  waitUntil: (work: Promise<unknown>) => void;
  /** More fields of the `stream_end` line, read when the stream has ended. */
  endFields?: () => LogFields;
}

/** A stream that runs, or one whose client left before it started (answered 499). */
export type Started =
  | {
      kind: "streaming";
      session: { body: ReadableStream<Uint8Array>; finished: Promise<StreamSummary> };
      /** Settles once the refund (if due) and the ledger record are done. */
      recorded: Promise<void>;
    }
  | { kind: "gone" };

/**
 * Opens the upstream and runs the session. Every way it ends leaves exactly one ledger record
 * (which settles the hold) and, when the upstream failed before its first token, the quota unit
 * given back. Throws the AppError a client is answered with when the upstream never answered.
 */
export async function runAdmitted(a: Admitted): Promise<Started> {
  const { config, input, grant, log, upstreamAbort } = a;
  const { model, prompt, streamId } = input;
  // From the admission on: the max duration counts from the moment the hold was taken, so the
  // stream ends (and settles) before the hold, which lives a minute longer, can expire.
  const startedAt = grant.hold.at;
  const refund = () => grant.refund().catch(() => {});

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
      ...a.endFields?.(),
    });
    if (summary.costMicroUsd > grant.hold.microUsd) {
      // Only the provider's own usage can pass the hold (an upstream that ignored max_tokens):
      // the budget is overspent by the difference, which an operator must hear of.
      log.warn("cost_over_hold", {
        stream_id: streamId,
        provider,
        cost_micro_usd: summary.costMicroUsd,
        hold_micro_usd: grant.hold.microUsd,
      });
    }
    await writeLedger(
      a.store,
      ledgerRecord(summary, {
        streamId,
        userKey: a.userKey,
        model: model.id,
        provider,
        ...(upstreamModel ? { upstreamModel } : {}),
        startedAt,
        hold: grant.hold,
      }),
      log,
    );
  };

  const provider = providerFor(config);
  if (upstreamAbort.signal.aborted) {
    // Gone during the limit checks: the upstream is never called, so nothing was spent; the
    // record of nothing settles the hold.
    a.waitUntil(refund());
    a.waitUntil(record(unspent("client_abort", startedAt), provider.id));
    return { kind: "gone" };
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
      maxTokens: grant.maxTokens,
      sampling: input.sampling,
      ...(input.tooling ? { tooling: input.tooling } : {}),
      signal: upstreamAbort.signal,
      capMicroUsd: grant.capMicroUsd,
      clientMaxTokens: input.maxTokens,
      report: a.report,
    });
  } catch (e) {
    clearTimeout(openDeadline);
    const reason = upstreamAbort.signal.reason;
    const bound = (finish: "upstream_error" | "client_abort" | "stopped") =>
      promptOnly(model, prompt, startedAt, grant.maxTokens, finish, input.tooling);
    if (reason === "max_duration") {
      // Asked and never answered within the max duration: the provider may still bill the
      // prompt (and hidden reasoning), so its bound is recorded; the quota unit comes back.
      a.waitUntil(refund());
      a.waitUntil(record(bound("upstream_error"), provider.id));
      throw new AppError("upstream_error", "the model provider did not answer in time", {
        cause: e,
      });
    }
    if (upstreamAbort.signal.aborted) {
      // The client left (or the owner stopped it) while the upstream was answering: the prompt
      // may be billed, so it is recorded and the quota stays spent, as for any stream the
      // client walks away from.
      a.waitUntil(record(bound(reason === "stopped" ? "stopped" : "client_abort"), provider.id));
      return { kind: "gone" };
    }
    // The upstream refused or failed before answering: the quota comes back, and a record of
    // nothing spent settles the hold.
    a.waitUntil(refund());
    a.waitUntil(record(unspent("upstream_error", startedAt), provider.id));
    throw e;
  }
  clearTimeout(openDeadline);
  a.report({ upstream_ttfb_ms: Date.now() - startedAt, model: model.id });

  const quota = grant.quota;
  const session = runSession(upstream, {
    streamId,
    // The answering target's prices: the stream is metered and recorded at them.
    model: upstream.model ?? model,
    prompt,
    ...(input.tooling ? { tooling: input.tooling } : {}),
    capMicroUsd: grant.capMicroUsd,
    maxTokens: upstream.maxTokens ?? grant.maxTokens,
    heartbeatMs: config.heartbeatIntervalMs,
    maxDurationMs: config.streamMaxDurationMs,
    idleTimeoutMs: config.upstreamIdleTimeoutMs,
    // A reasoning model may think in silence for as long as the stream may last.
    firstTokenTimeoutMs: model.reasoning
      ? config.streamMaxDurationMs
      : config.upstreamFirstTokenTimeoutMs,
    startedAt,
    upstreamAbort,
    encode: a.encode,
    doneExtras: quota
      ? {
          quota: {
            hourly_remaining: quota.hourly.remaining,
            total_remaining: quota.total.remaining,
          },
        }
      : undefined,
  });
  const recorded = session.finished.then(async (summary) => {
    if (summary.failedBeforeFirstToken) await refund();
    await record(summary, upstream.provider, upstream.upstreamModel);
  });
  a.waitUntil(recorded);
  return { kind: "streaming", session, recorded };
}

/** The fields of a stream's access line, from its summary. */
export function accessFields(streamId: string, summary: StreamSummary): LogFields {
  return {
    stream_id: streamId,
    finish_reason: summary.finishReason,
    input_tokens: summary.inputTokens,
    output_tokens: summary.outputTokens,
    cost_micro_usd: summary.costMicroUsd,
    ttft_ms: summary.ttftMs,
    stream_duration_ms: summary.durationMs,
  };
}

/**
 * What the stream stage reads of the request's context, set by the stages before it. c.get,
 * not c.var: hono builds a fresh object of every variable on each c.var read.
 */
export function stageVars(c: Context<AppEnv>) {
  return [
    c.get("config"),
    c.get("streamInput"),
    c.get("principal"),
    c.get("limits"),
    c.get("log"),
    c.get("wire"),
  ] as const;
}
