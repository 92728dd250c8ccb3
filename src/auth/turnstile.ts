/**
 * @module Cloudflare Turnstile on minting: a token counts only when siteverify accepts it for
 * this request's hostname and the action `anon_session`; siteverify unreachable counts as a no.
 */
import * as z from "zod";
import type { Config } from "../config";

/** The action the page's widget is rendered with, checked in siteverify's answer. */
export const TURNSTILE_ACTION = "anon_session";
/** Cloudflare's bound on a widget token's length. */
export const TURNSTILE_TOKEN_MAX = 2048;
/** A siteverify slower than this counts as unreachable. */
const SITEVERIFY_TIMEOUT_MS = 3_000;

/** Why a challenge did not pass; kept for the log line, never sent to the client. */
export type ChallengeFailure = "missing" | "rejected" | "hostname" | "action" | "unavailable";

/** The verdict: passed, or why not. */
export type ChallengeResult = { ok: true } | { ok: false; reason: ChallengeFailure };

const verdict = z.object({
  success: z.boolean(),
  hostname: z.string().optional(),
  action: z.string().optional(),
});

/**
 * Asks siteverify about `token`. Fails closed: a non-200, a timeout, a network error or an
 * answer of any other shape is `unavailable`, and the caller mints nothing.
 */
export async function verifyTurnstile(
  turnstile: NonNullable<Config["turnstile"]>,
  token: string | undefined,
  hostname: string,
  remoteIp: string | undefined,
  fetchImpl: typeof fetch = fetch,
): Promise<ChallengeResult> {
  if (!token) return { ok: false, reason: "missing" };
  const form = new URLSearchParams({ secret: turnstile.secretKey, response: token });
  if (remoteIp) form.set("remoteip", remoteIp);
  let answer: z.infer<typeof verdict>;
  try {
    const res = await fetchImpl(turnstile.verifyUrl, {
      method: "POST",
      body: form,
      redirect: "manual",
      signal: AbortSignal.timeout(SITEVERIFY_TIMEOUT_MS),
    });
    if (res.status !== 200) {
      await res.body?.cancel();
      return { ok: false, reason: "unavailable" };
    }
    const parsed = verdict.safeParse(await res.json());
    if (!parsed.success) return { ok: false, reason: "unavailable" };
    answer = parsed.data;
  } catch {
    return { ok: false, reason: "unavailable" };
  }
  if (!answer.success) return { ok: false, reason: "rejected" };
  // A token solved on another site (or for another widget) proves nothing about this mint.
  if (answer.hostname !== hostname) return { ok: false, reason: "hostname" };
  if (answer.action !== TURNSTILE_ACTION) return { ok: false, reason: "action" };
  return { ok: true };
}
