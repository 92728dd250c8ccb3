/**
 * @module What an OpenAI-compatible upstream is sent: the prompt's messages in the
 * chat-completions shape (parts, tool calls, tool results) and the request's tooling.
 */
import type { PromptMessage, Tooling } from "../prompt";

/**
 * One message in the chat-completions shape. A plain text message is `{role, content}` exactly,
 * as before tools existed; parts, tool calls and the answered call id only when present.
 */
export function openAiMessage(m: PromptMessage): Record<string, unknown> {
  if (m.toolCalls) {
    return { role: m.role, content: m.content === "" ? null : m.content, tool_calls: m.toolCalls };
  }
  if (m.toolCallId !== undefined) {
    return { role: m.role, content: m.content, tool_call_id: m.toolCallId };
  }
  if (m.parts) return { role: m.role, content: m.parts };
  return { role: m.role, content: m.content };
}

/** The body fields of the request's tooling, in OpenAI's names; none when there is none. */
export function openAiTooling(tooling: Tooling | undefined): Record<string, unknown> {
  if (!tooling) return {};
  const body: Record<string, unknown> = {};
  if (tooling.tools) body.tools = tooling.tools;
  if (tooling.toolChoice !== undefined) body.tool_choice = tooling.toolChoice;
  if (tooling.parallelToolCalls !== undefined) body.parallel_tool_calls = tooling.parallelToolCalls;
  if (tooling.responseFormat !== undefined) body.response_format = tooling.responseFormat;
  return body;
}
