/** @module What the siteverify stand-in and the tests agree on (no Node imports: workerd reads it too). */

/** The secret key the worker under test must send. */
export const TURNSTILE_TEST_SECRET = "turnstile-test-secret-key";
/** A site key of the shape Cloudflare issues. */
export const TURNSTILE_TEST_SITE_KEY = "1x00000000000000000000AA";

/** A token that makes the stand-in answer `verdict`, as siteverify would for a solved widget. */
export function verdictToken(verdict: Record<string, unknown>): string {
  return `v:${JSON.stringify(verdict)}`;
}
