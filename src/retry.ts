/** @module Retries of an idempotent store write: the ledger record, the cancel of an admission. */

/**
 * Runs `attempt`, and again after each pause in `pausesMs` while it keeps throwing; throws the
 * last error when every attempt failed. Only for work that is safe to repeat.
 */
export async function withRetries<T>(
  attempt: () => Promise<T>,
  pausesMs: readonly number[],
): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await attempt();
    } catch (e) {
      const pause = pausesMs[i];
      if (pause === undefined) throw e;
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
}
