/** @module The prompt the upstream receives: the operator's system prompt first, then the conversation. */

/** A function call the assistant made (OpenAI's shape: `arguments` is JSON text). */
export interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/** A content part of a user message on the OpenAI surface. */
export type ContentPart =
  | { type: "text"; text: string }
  | { type: "image_url"; image_url: { url: string; detail?: "low" | "high" | "auto" } };

/**
 * One message as the upstream receives it. Clients never send `system`, `tool`, parts or tool
 * calls on the native API; the OpenAI surface may.
 */
export interface PromptMessage {
  role: "system" | "user" | "assistant" | "tool";
  /** The text of the message (of all its text parts, joined). */
  content: string;
  /** A user message with images: its parts, in order (the text parts are also in `content`). */
  parts?: ContentPart[];
  /** The most input tokens this message's images can be billed as (see image-tokens.ts). */
  imageTokens?: number;
  /** An assistant message's function calls. */
  toolCalls?: ToolCall[];
  /** A `tool` message: the call it answers. */
  toolCallId?: string;
}

/** A function the model may call (OpenAI's `tools` entry, type `function`). */
export interface ToolDefinition {
  type: "function";
  function: {
    name: string;
    description?: string;
    parameters?: Record<string, unknown>;
    strict?: boolean | null;
  };
}

/**
 * What a request carries besides its messages, for the upstream: tools, how to choose them, and
 * the output format. All of it is tokenized by the provider, so it counts in the input bound.
 */
export interface Tooling {
  tools?: ToolDefinition[];
  toolChoice?: "none" | "auto" | "required" | { type: "function"; function: { name: string } };
  parallelToolCalls?: boolean;
  responseFormat?: Record<string, unknown>;
}

/** `[system prompt] + messages`, in order; the system prompt only when the operator set one. */
export function buildPrompt(
  systemPrompt: string | undefined,
  messages: readonly PromptMessage[],
): PromptMessage[] {
  return systemPrompt ? [{ role: "system", content: systemPrompt }, ...messages] : [...messages];
}
