/** @module The prompt the upstream receives: the operator's system prompt first, then the conversation. */

/** One message as the upstream receives it. Clients never send `system` on the native API. */
export interface PromptMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** `[system prompt] + messages`, in order; the system prompt only when the operator set one. */
export function buildPrompt(
  systemPrompt: string | undefined,
  messages: readonly PromptMessage[],
): PromptMessage[] {
  return systemPrompt ? [{ role: "system", content: systemPrompt }, ...messages] : [...messages];
}
