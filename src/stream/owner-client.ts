/**
 * @module The worker's side of the stream owner (owner.ts): which object owns a stream, the one
 * call that starts it and returns the first reader's body, and the calls that resume and stop it.
 */
import { env as ownEnv } from "cloudflare:workers";
import type { Context } from "hono";
import type { Config } from "../config";
import type { AppEnv, Bindings } from "../env";
import { AppError } from "../errors";
import { annotate, finishLater } from "../observe/access-log";
import { stageVars } from "./admitted";
import type { ResumeAnswer, StreamOwner } from "./owner";

/** Status for a client that left before its stream started (nginx's "client closed request"). */
const CLIENT_CLOSED = 499;

/**
 * The owner of principal `userKey`'s streams: one object per principal (and store prefix), so
 * two principals' equal ids are two objects. Named by the key itself, as the principal's limits
 * object is (durable-store.ts): the key is `source:userId`, no secret; idFromName hashes the
 * name into the id, and no one but this Worker sees either. No hash of our own per request.
 */
export function ownerOf(
  bindings: Bindings,
  config: Config,
  userKey: string,
): DurableObjectStub<StreamOwner> {
  const ns = bindings.STREAMS as unknown as DurableObjectNamespace<StreamOwner>;
  return ns.get(ns.idFromName(`${config.storePrefix}:streams:${userKey}`));
}

const overrides = new WeakMap<object, { key: string; vars: Record<string, unknown> }>();

/**
 * The vars of `bindings` that differ from the Worker's own env, which the owner reads: none in
 * production (the same env); a test's overrides in tests. Computed once per env object.
 */
function overridesOf(bindings: Bindings): { key: string; vars: Record<string, unknown> } {
  let known = overrides.get(bindings);
  if (!known) {
    const diff: Record<string, unknown> = {};
    const own = ownEnv as unknown as Record<string, unknown>;
    const given = bindings as unknown as Record<string, unknown>;
    for (const key of new Set([...Object.keys(own), ...Object.keys(given)])) {
      const [a, b] = [own[key], given[key]];
      if (a === b) continue;
      if (b === undefined) diff[key] = null;
      else if (typeof b === "string") diff[key] = b;
      else if (typeof b === "object" && b !== null && JSON.stringify(a) !== JSON.stringify(b)) {
        // A var given as a table (PROVIDERS, MODELS); a binding (an object with methods) is not
        // a var and cannot be sent: the owner uses its own.
        if (Object.getPrototypeOf(b) === Object.prototype) diff[key] = b;
      }
    }
    known = { key: crypto.randomUUID(), vars: diff };
    overrides.set(bindings, known);
  }
  return known;
}

/** The admitted stream of this request, run by its owner: one call, which returns the body. */
export async function ownedStream(c: Context<AppEnv>): Promise<Response> {
  const [config, input, principal, limits, log, wire] = stageVars(c);
  const { streamId } = input;
  const owner = ownerOf(c.env, config, principal.key);
  const env = overridesOf(c.env);
  const answer = await owner.start({
    overrides: env.vars,
    envKey: env.key,
    requestId: log.requestId,
    userKey: principal.key,
    input: { ...input, model: input.model.id },
    grant: {
      capMicroUsd: limits.capMicroUsd,
      maxTokens: limits.maxTokens,
      hold: limits.hold,
      quota: limits.quota,
    },
    quotaSpentAt: limits.quotaSpentAt,
  });
  switch (answer.kind) {
    case "exists":
      // Nothing ran: the admission is undone, so a 409 spends nothing.
      c.executionCtx.waitUntil(limits.cancel());
      throw new AppError("stream_exists", `stream ${streamId} is still streaming`, {
        headers: limits.headers,
      });
    case "gone":
      return new Response(null, { status: CLIENT_CLOSED });
    case "stopped":
      // Its client stopped it before it reached the owner: it never runs, and the admission
      // is undone (quota, hold, rate-limit unit), so it spends nothing.
      c.executionCtx.waitUntil(limits.cancel());
      annotate(c.req.raw, { stream_id: streamId, finish_reason: "stopped" });
      return new Response(null, { status: CLIENT_CLOSED });
    case "refused":
      throw new AppError(answer.error.code, answer.error.detail, {
        ...(answer.error.retryAfter === null ? {} : { retryAfter: answer.error.retryAfter }),
        headers: limits.headers,
      });
  }
  annotate(c.req.raw, answer.report);
  followClient(c, answer.leave);
  // Gone while the upstream was answering: the stream goes on for the grace (a resume can pick
  // it up), as it does for a client that leaves later.
  if (c.req.raw.signal?.aborted) return new Response(null, { status: CLIENT_CLOSED });
  // The access line and the metrics wait for the stream's own figures; so does waitUntil, so
  // that the request's background work ends with the stream's record.
  const finished = answer.finished();
  finishLater(c.req.raw, finished);
  c.executionCtx.waitUntil(finished.catch(() => {}));
  const headers = { ...wire.headers, ...limits.headers, "X-Stream-Id": streamId };
  return new Response(detached(answer.body, answer.leave), { status: 200, headers });
}

/** A client whose request signal says it left leaves the stream (its owner starts the grace). */
function followClient(c: Context<AppEnv>, leave: () => void): void {
  const signal = c.req.raw.signal;
  if (!signal) return;
  const gone = () => void Promise.resolve(leave()).catch(() => {});
  if (signal.aborted) gone();
  else signal.addEventListener("abort", gone, { once: true });
}

/** A reader of `streamId` from after event `after`, as its owner answers. */
export async function resumeOwned(
  c: Context<AppEnv>,
  streamId: string,
  after: number,
): Promise<ResumeAnswer> {
  const owner = ownerOf(c.env, c.get("config"), c.get("principal").key);
  const answer = await owner.resume(streamId, after);
  if (answer.kind === "reading") followClient(c, answer.leave);
  return answer;
}

/** Stops `streamId` at once. */
export async function stopOwned(
  c: Context<AppEnv>,
  streamId: string,
): Promise<"stopped" | "ended" | "unknown"> {
  const owner = ownerOf(c.env, c.get("config"), c.get("principal").key);
  return owner.stop(streamId);
}

/**
 * The owner's body as this response's: a client that cancels it leaves the stream (the owner
 * closes its end) instead of aborting the RPC stream under the owner's feet.
 */
export function detached(
  body: ReadableStream<Uint8Array>,
  leave: () => void,
): ReadableStream<Uint8Array> {
  const { readable, writable } = new IdentityTransformStream();
  body.pipeTo(writable, { preventCancel: true }).catch(() => {
    void Promise.resolve(leave()).catch(() => {});
  });
  return readable;
}
