/**
 * @module Tokens this isolate has verified, so a caller's next requests skip the signature
 * check and the claim parsing. Keyed by the whole token string (signature included), so only
 * the very same token hits; an entry lives 60 s at most and never past the token's `exp`; at
 * most 1,000 entries, the least recently used going first.
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
    this.entries.delete(token);
    if (entry.until <= now) return undefined;
    // Re-inserted: Map keeps insertion order, so the first key is the least recently used.
    this.entries.set(token, entry);
    return entry.principal;
  }

  /** Remembers a token just verified at `now`. */
  set(token: string, principal: Principal, now: number): void {
    const until = Math.min(now + this.ttlMs, principal.expiresAt * 1000);
    if (until <= now) return;
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
