/** @module Picks the configured store once per isolate and makes every call fail closed. */
import type { Config } from "../config";
import type { Bindings } from "../env";
import { AppError } from "../errors";
import { durableStore } from "./durable-store";
import { type Clock, type ClockedStore, type LimitSpecs, systemClock } from "./store";
import { upstashStore } from "./upstash-store";

/** Seconds a client is told to wait when the store is down. */
export const STORE_DOWN_RETRY_AFTER_S = 5;

/** An IPv6 /48 may use this many times a /64's limits (one host easily holds a whole /48). */
export const WIDE_FACTOR = 4;

/** The limits the config asks for. */
export function limitSpecs(config: Config): LimitSpecs {
  return {
    user: config.rateLimitUser,
    ip: config.rateLimitIp,
    ipWide: { ...config.rateLimitIp, limit: config.rateLimitIp.limit * WIDE_FACTOR },
    anonHourly: { limit: config.anonQuotaHourly, windowMs: 3_600_000 },
    anonTotal: config.anonQuotaTotal,
    sessionsPerIp: { limit: config.anonSessionsPerIpHourly, windowMs: 3_600_000 },
    sessionsPerIpWide: {
      limit: config.anonSessionsPerIpHourly * WIDE_FACTOR,
      windowMs: 3_600_000,
    },
    usageReads: config.rateLimitUsage,
    budgets: config.budgets,
    budgetShards: config.budgetShards,
    // A hold outlives any stream (STREAM_MAX_DURATION_MS) by a minute, for its settlement.
    holdTtlMs: config.streamMaxDurationMs + 60_000,
  };
}

/** A store failure, with how long the call took; handlers turn it into `limits_unavailable`. */
export class StoreUnavailable extends AppError {
  constructor(cause: unknown) {
    super("limits_unavailable", "the limits store is unavailable; try again shortly", {
      retryAfter: STORE_DOWN_RETRY_AFTER_S,
      cause,
    });
  }
}

/**
 * Wraps every method so that an error, or no answer within `timeoutMs`, rejects with
 * StoreUnavailable. Nothing here ever answers "allowed" on a failure.
 */
export function failClosed(store: ClockedStore, timeoutMs: number): ClockedStore {
  const guard =
    <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> => {
      let timer: number | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`store timeout after ${timeoutMs} ms`)),
          timeoutMs,
        );
      });
      // Promise.resolve().then: a synchronous throw in `fn` becomes a rejection the race sees.
      return Promise.race([Promise.resolve().then(() => fn(...args)), deadline])
        .catch((e: unknown) => {
          throw e instanceof AppError ? e : new StoreUnavailable(e);
        })
        .finally(() => {
          if (timer !== undefined) clearTimeout(timer);
        });
    };
  return {
    kind: store.kind,
    now: store.now,
    admit: guard(store.admit),
    cancelAdmission: guard(store.cancelAdmission),
    refundQuota: guard(store.refundQuota),
    hitSessionMint: guard(store.hitSessionMint),
    hitUsageRead: guard(store.hitUsageRead),
    usage: guard(store.usage),
    writeLedger: guard(store.writeLedger),
    sharedBudgets: guard(store.sharedBudgets),
    recordMetrics: guard(store.recordMetrics),
    readMetrics: guard(store.readMetrics),
  };
}

/**
 * The store for this config, failing closed: Upstash when configured, else the Durable Object.
 * `now` is the clock every decision takes its time from (a test pins it here).
 */
export function buildStore(config: Config, env: Bindings, now: Clock = systemClock): ClockedStore {
  const specs = limitSpecs(config);
  const prefix = config.storePrefix;
  const inner = config.upstash
    ? upstashStore(config.upstash, specs, { timeoutMs: config.limitsTimeoutMs, prefix, now })
    : durableStore(env.LIMITS, specs, { prefix, now });
  return failClosed(inner, config.limitsTimeoutMs);
}

const stores = new WeakMap<Config, ClockedStore>();

/** The store for this config on the real clock, built once per config. */
export function storeFor(config: Config, env: Bindings): ClockedStore {
  let store = stores.get(config);
  if (!store) {
    store = buildStore(config, env);
    stores.set(config, store);
  }
  return store;
}
