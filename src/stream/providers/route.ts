/**
 * @module A model's route as one Provider: its targets tried in order until one answers. A target
 * that fails before its stream opens (no connection, no answer within the connect timeout,
 * 408/409/429/5xx, a bad key) hands the request to the next; a 400 ends it, since every target
 * would refuse it. The answering target's prices and `max_tokens` (from the hold, at its own
 * output price) go with the stream. Only `open` is wrapped: nothing is added per token.
 */
import { AppError } from "../../errors";
import { maxOutputTokens } from "../cost";
import type { ModelInfo } from "../models";
import type { ProviderConfig, Registry, RouteTarget } from "../registry";
import { anthropicTarget } from "./anthropic";
import { UpstreamFailure } from "./failure";
import { Breakers, KeyRing } from "./health";
import { openAiTarget } from "./openai";
import type { Provider, ProviderRequest, ProviderStream, TargetAdapter } from "./provider";
import { workersAiTarget } from "./workers-ai";

export interface RouteOptions {
  /** A target with no answer (status and headers) within this counts as failed. */
  connectTimeoutMs: number;
  fetchImpl?: typeof fetch;
  now?: () => number;
  /** Answers for a provider whose secrets are not set (development only). */
  standIn?: TargetAdapter;
}

/** The adapter of one provider's protocol. */
function adapterFor(p: ProviderConfig, o: RouteOptions): TargetAdapter {
  if (p.unavailable && o.standIn) return o.standIn;
  const fetchImpl = o.fetchImpl ?? ((input, init) => fetch(input, init));
  switch (p.type) {
    case "anthropic":
      return anthropicTarget({ baseUrl: p.baseUrl, headers: p.headers }, fetchImpl);
    case "workers-ai":
      if (!p.binding) throw new Error(`provider ${p.name} has no AI binding`);
      return workersAiTarget(p.binding);
    default:
      return openAiTarget({ baseUrl: p.baseUrl, headers: p.headers }, fetchImpl);
  }
}

const samePrices = (a: ModelInfo, b: ModelInfo) =>
  a.inputUsdPerMillion === b.inputUsdPerMillion && a.outputUsdPerMillion === b.outputUsdPerMillion;

/**
 * `max_tokens` for one target: what the stream's hold pays for at this target's prices, so a
 * cheaper target gets more for the same cap. A target priced like the hold keeps the
 * admission's own figure (a one-target route sends exactly what it did before routes).
 */
export function targetMaxTokens(target: ModelInfo, request: ProviderRequest): number {
  if (request.capMicroUsd === undefined || samePrices(target, request.model)) {
    return request.maxTokens;
  }
  return maxOutputTokens(
    target,
    request.prompt,
    request.capMicroUsd,
    request.clientMaxTokens ?? null,
    request.tooling,
  );
}

/** The request's signal plus a connect timer; `connected()` stops the timer, `release()` unhooks. */
function attemptSignal(parent: AbortSignal, timeoutMs: number) {
  const controller = new AbortController();
  let timedOut = false;
  const onAbort = () => controller.abort(parent.reason);
  parent.addEventListener("abort", onAbort, { once: true });
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort("connect_timeout");
  }, timeoutMs);
  return {
    signal: controller.signal,
    timedOut: () => timedOut,
    connected: () => clearTimeout(timer),
    release: () => {
      clearTimeout(timer);
      parent.removeEventListener("abort", onAbort);
    },
  };
}

const targetKey = (t: RouteTarget) => `${t.provider.name}\u0000${t.model.upstreamName}`;

/** A Provider that opens the route of whichever registry model it is asked for. */
export function routeProvider(registry: Registry, o: RouteOptions): Provider {
  const now = o.now ?? Date.now;
  const breakers = new Breakers(now);
  const adapters = new Map<string, TargetAdapter>();
  const rings = new Map<string, KeyRing>();
  const adapter = (p: ProviderConfig) => {
    let a = adapters.get(p.name);
    if (!a) {
      a = adapterFor(p, o);
      adapters.set(p.name, a);
    }
    return a;
  };
  const ring = (p: ProviderConfig) => {
    let r = rings.get(p.name);
    if (!r) {
      r = new KeyRing(p.keys, now);
      rings.set(p.name, r);
    }
    return r;
  };
  const first = registry.models.get(registry.defaultModel)?.route[0];

  return {
    id: first?.provider.name ?? "openai",
    async open(request): Promise<ProviderStream> {
      const route = registry.models.get(request.model.id)?.route;
      if (!route || route.length === 0) {
        throw new AppError("model_unavailable", "this model has no provider", { retryAfter: 60 });
      }
      const open = route.filter((t) => !breakers.skips(targetKey(t)));
      const skipped = route.filter((t) => !open.includes(t)).map((t) => t.provider.name);
      // Every target skipped: the first is tried anyway (it may have recovered).
      const targets = open.length > 0 ? open : route.slice(0, 1);
      const attempts: string[] = [];
      const fallbacks: string[] = [];
      const report = () =>
        request.report?.({
          upstream_attempts: attempts.join(","),
          upstream_fallbacks: fallbacks.join(","),
          upstream_breaker_skips: skipped.join(","),
        });
      let last: UpstreamFailure | null = null;
      for (const t of targets) {
        if (last) fallbacks.push(attempts.at(-1) as string);
        attempts.push(t.provider.name);
        const keys = ring(t.provider);
        const { key, index } = keys.take();
        const attempt = attemptSignal(request.signal, o.connectTimeoutMs);
        const maxTokens = targetMaxTokens(t.model, request);
        try {
          const stream = await adapter(t.provider).open(
            { ...request, model: t.model, maxTokens, signal: attempt.signal },
            key,
          );
          attempt.connected();
          breakers.succeeded(targetKey(t));
          report();
          return { ...stream, model: t.model, upstreamModel: t.model.upstreamName, maxTokens };
        } catch (e) {
          attempt.release();
          if (request.signal.aborted) {
            report();
            throw e;
          }
          const failure =
            e instanceof UpstreamFailure
              ? e
              : attempt.timedOut()
                ? new UpstreamFailure(null, { cause: new Error("connect timeout") })
                : new UpstreamFailure(null, { cause: e });
          if (failure.badKey) keys.refused(index);
          if (!failure.retryable) {
            report();
            // The request itself was refused: every target would refuse it too.
            throw new AppError("upstream_error", "the model provider refused the request", {
              cause: failure.cause,
            });
          }
          breakers.failed(targetKey(t));
          last = failure;
        }
      }
      report();
      throw last ?? new UpstreamFailure(null);
    },
  };
}
