/**
 * @module Tokens this isolate has verified, so a caller's next requests skip the signature
 * check and the claim parsing. Keyed by the whole token string (signature included), so only
 * the very same token hits; an entry lives 60 s at most and never past the token's `exp`; at
 * most 1,000 entries, the oldest going first (entries are short-lived, so first in, first out
 * does as well as least recently used, without reordering the map on every hit).
 */
import type { Principal } from "./principal";

export const VERIFIED_TTL_MS = 60_000;
export const VERIFIED_MAX_ENTRIES = 1_000;

/** A bounded, expiring memo of verified tokens. */
export class VerifiedTokens {
  private readonly entries = new Map<string, { principal: Principal; until: number }>();

  constructor(
    private readonly ttlMs = VERIFIED_TTL_MS,
    private readonly maxEntries = VERIFIED_MAX_ENTRIES,
  ) {}

  /** The principal of `token` if it was verified here and its entry is still valid at `now`. */
  get(token: string, now: number): Principal | undefined {
    const entry = this.entries.get(token);
    if (!entry) return undefined;
    if (entry.until > now) return entry.principal;
    this.entries.delete(token);
    return undefined;
  }

  /** Remembers a token just verified at `now`. */
  set(token: string, principal: Principal, now: number): void {
    const until = Math.min(now + this.ttlMs, principal.expiresAt * 1000);
    if (until <= now) return;
    // Map keeps insertion order: the first key is the oldest entry.
    this.entries.delete(token);
    this.entries.set(token, { principal, until });
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
