/**
 * @module Refusals an isolate remembers: a caller a rate limit or a quota refused is refused
 * again, without asking the store, until the Retry-After it was given. It can only refuse,
 * never admit, so a flood of refused requests costs the store (and the operator's bill) almost
 * nothing. Budget refusals are never remembered: a settling hold frees budget at any moment.
 */
import type { Config } from "../config";
import { AppError, type ErrorCode } from "../errors";

/** One remembered refusal: what to answer, and until when (unix ms). */
interface Denial {
  until: number;
  code: ErrorCode;
  detail: string;
  headers: Record<string, string>;
}

/** At most this many refusals per isolate; the oldest go first. */
export const MAX_DENIALS = 10_000;

/** The refusals of one isolate (and config). */
export class DenyCache {
  private readonly denials = new Map<string, Denial>();

  constructor(private readonly max = MAX_DENIALS) {}

  /** Remembers that `key` is refused until `until`, with the answer it got. */
  remember(key: string, until: number, code: ErrorCode, detail: string, headers = {}): void {
    this.denials.delete(key);
    this.denials.set(key, { until, code, detail, headers });
    if (this.denials.size > this.max) {
      const oldest = this.denials.keys().next().value;
      if (oldest !== undefined) this.denials.delete(oldest);
    }
  }

  /** Throws the remembered refusal of the first of `keys` still refused at `now`. */
  refuseIfDenied(keys: (string | null)[], now: number): void {
    for (const key of keys) {
      if (key === null) continue;
      const d = this.denials.get(key);
      if (!d) continue;
      if (d.until <= now) {
        this.denials.delete(key);
        continue;
      }
      const wait = d.until - now;
      throw new AppError(d.code, d.detail, {
        retryAfter: wait / 1000,
        headers: { ...d.headers, "RateLimit-Remaining": "0" },
      });
    }
  }

  /** How many refusals are remembered (for tests). */
  get size(): number {
    return this.denials.size;
  }
}

const caches = new WeakMap<Config, DenyCache>();

/** The deny cache of this isolate for `config`. */
export function denyCacheFor(config: Config): DenyCache {
  let cache = caches.get(config);
  if (!cache) {
    cache = new DenyCache();
    caches.set(config, cache);
  }
  return cache;
}
