/** @module What the fake upstream records of a request: shared by the fake (Node) and the tests (workerd). */

/** What the fake saw of one request, keyed by the directive's `id`. */
export interface UpstreamRecord {
  id: string;
  model: string;
  maxTokens: number | null;
  /** `max_completion_tokens`, which the gpt-5 and o families take instead of `max_tokens`. */
  maxCompletionTokens: number | null;
  /** The messages as received, in order. */
  messages: { role: string; content: unknown }[];
  /** Every other field of the request body (sampling parameters and the like). */
  params: Record<string, unknown>;
  includeUsage: boolean;
  authorization: string | null;
  tokensSent: number;
  /** The client went away before the answer ended. */
  clientAborted: boolean;
  /** ms since the request arrived when the abort was seen. */
  abortedAfterMs: number | null;
  finished: boolean;
  /** What an o200k provider bills for it (directive `bill=1`), set when the request ends. */
  bill?: FakeBill;
}

/** What the fake billed one request for, in o200k tokens (test/support/fake-bill.ts). */
export interface FakeBill {
  /** The chat as sent, with OpenAI's framing (what `prompt_tokens` counts). */
  promptTokens: number;
  /** Visible output served (each chunk counted on its own) plus hidden reasoning. */
  completionTokens: number;
  hiddenReasoningTokens: number;
  /** The client left while the model was still thinking silently. */
  cutWhileThinking: boolean;
}
