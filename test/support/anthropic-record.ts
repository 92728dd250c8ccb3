/** @module What the fake Anthropic records of a request: shared by the fake (Node) and the tests (workerd). */

/** What the fake saw of one request, keyed by the directive's `id`. */
export interface AnthropicRecord {
  /** The `x-api-key` header. */
  apiKey: string | null;
  /** The `anthropic-version` header. */
  version: string | null;
  body: Record<string, unknown>;
}
