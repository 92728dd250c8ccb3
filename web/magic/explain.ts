/** @module Words for the page: amounts, durations, and a plain sentence for each API error. */
import type { Source } from "./api";

/** Dollars: six decimals under a cent (stream costs), four above. */
export function formatUsd(n: unknown): string {
  if (typeof n !== "number" || !Number.isFinite(n)) return "–";
  if (n === 0) return "$0.00";
  return `$${n < 0.01 ? n.toFixed(6) : n.toFixed(4)}`;
}

/** A duration in ms as "850 ms" or "1.6 s". */
export function formatMs(ms: unknown): string {
  if (typeof ms !== "number") return "–";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** A wait in whole seconds: "45 s", "4:05", "13:04:05". */
export function formatWait(s: number): string {
  if (s < 60) return `${s} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/** A coarse "in 5 h 20 min" / "in 12 min" until `resetS` (unix seconds). */
export function formatUntil(resetS: number): string {
  const left = Math.max(0, Math.round(resetS - Date.now() / 1000));
  const h = Math.floor(left / 3600);
  const m = Math.ceil((left % 3600) / 60);
  if (h === 0) return `in ${Math.max(1, m)} min`;
  return m === 0 || m === 60 ? `in ${h + (m === 60 ? 1 : 0)} h` : `in ${h} h ${m} min`;
}

const capitalise = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** The title of the banner for each refusal that comes with a wait. */
export const LIMIT_TITLE: Record<string, string> = {
  rate_limited: "Too many requests.",
  quota_exceeded: "Quota used up.",
  too_many_sessions: "Too many new sessions from this address.",
  budget_exceeded: "Your budget is used up.",
  budget_exhausted: "The service's spending limit is reached.",
};

/** A plain sentence for an API error; `detail` is shown where it names what to fix or which limit. */
export function explain(e: { code: string; detail?: string }, source?: Source): string {
  const detail = e.detail ? `${capitalise(e.detail.replace(/\.$/, ""))}.` : "";
  switch (e.code) {
    case "unauthorized":
      return source === "anonymous"
        ? "The server did not accept this session, even after renewing it. Reload the page to try again."
        : "Your sign-in was not accepted; it may have expired. Sign in again to continue.";
    case "invalid_input":
      return `The message was not accepted. ${detail}`.trim();
    case "payload_too_large":
      return "The message is too long to send.";
    case "rate_limited":
    case "quota_exceeded":
    case "too_many_sessions":
      return detail || "A usage limit was reached.";
    case "budget_exceeded":
      return `${detail || "Your spending budget is used up."} You can send again when the countdown ends.`;
    case "budget_exhausted":
      return `${detail || "A shared spending budget is used up."} That budget is shared by everyone using the service; you can send again when the countdown ends.`;
    case "model_not_allowed":
      return "This model is not available to you. Choose another model in the menu.";
    case "limits_unavailable":
      return "The service cannot check usage limits right now, so it is not answering. Please try again shortly.";
    case "model_unavailable":
      return "This model is not available right now. Try another model, or try again later.";
    case "upstream_busy":
      return "The model provider is busy. Please try again shortly.";
    case "upstream_error":
      return "The model provider failed to answer. Please try again.";
    case "network":
      return "Could not reach the server. Check your connection and try again.";
    default:
      return "Something went wrong on the server. Please try again.";
  }
}

/** The note for an answer the stream cut short on purpose (`finish_reason`), or "". */
export function cutShort(reason: unknown): string {
  switch (reason) {
    case "cost_cap":
      return "The answer was cut short by its cost cap.";
    case "max_duration":
      return "The answer was cut short: it took too long.";
    case "length":
      return "The answer was cut short by the length limit.";
    case "content_filter":
      return "The provider's content filter stopped the answer.";
    case "client_abort":
      return "The answer was cut short: the connection was gone for too long, so the server stopped it.";
    default:
      return "";
  }
}
