/** @module Who is asking: the verified identity every later stage reads. */

/** Where a principal's token came from. */
export type PrincipalSource = "supabase" | "anonymous";

/** A verified caller. Built only from verified claims, never from the token string. */
export interface Principal {
  /** The verified `sub`. */
  userId: string;
  /** Anonymous callers (our own sessions and Supabase anonymous sign-ins) have quotas. */
  isAnonymous: boolean;
  source: PrincipalSource;
  /** Namespaced id for limits and the ledger: `${source}:${userId}`, so sources never collide. */
  key: string;
  /** Token expiry, unix seconds. */
  expiresAt: number;
}

/** Builds a principal with its namespaced key. */
export function principal(
  source: PrincipalSource,
  userId: string,
  isAnonymous: boolean,
  expiresAt: number,
): Principal {
  return { userId, isAnonymous, source, key: `${source}:${userId}`, expiresAt };
}
