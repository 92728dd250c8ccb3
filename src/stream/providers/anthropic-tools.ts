/**
 * @module OpenAI's tools, tool calls, tool results and image parts in Anthropic's Messages
 * terms: `tools` with `input_schema`, `tool_choice`, `tool_use` and `tool_result` blocks, image
 * blocks from data and https URLs. A plain text conversation stays `{role, content}` strings.
 */
import type { ContentPart, PromptMessage, Tooling } from "../prompt";

type Block = Record<string, unknown>;
interface AnthropicMessage {
  role: "user" | "assistant";
  content: string | Block[];
}

/** An image part as Anthropic's image block: base64 from a data URL, or the https URL itself. */
function imageBlock(url: string): Block {
  const data = /^data:(image\/[a-z]+);base64,(.*)$/s.exec(url);
  return data
    ? { type: "image", source: { type: "base64", media_type: data[1], data: data[2] } }
    : { type: "image", source: { type: "url", url } };
}

const partBlock = (p: ContentPart): Block =>
  p.type === "text" ? { type: "text", text: p.text } : imageBlock(p.image_url.url);

/** A call's arguments as the object Anthropic wants; text that is not a JSON object is wrapped. */
function input(args: string): unknown {
  try {
    const v = JSON.parse(args) as unknown;
    if (typeof v === "object" && v !== null && !Array.isArray(v)) return v;
  } catch {
    // Not JSON: kept as it was, inside an object.
  }
  return { arguments: args };
}

function toAnthropic(m: PromptMessage & { role: "user" | "assistant" | "tool" }): AnthropicMessage {
  if (m.role === "tool") {
    const result = { type: "tool_result", tool_use_id: m.toolCallId, content: m.content };
    return { role: "user", content: [result] };
  }
  if (m.role === "assistant" && m.toolCalls) {
    const blocks: Block[] = m.content ? [{ type: "text", text: m.content }] : [];
    for (const c of m.toolCalls) {
      blocks.push({
        type: "tool_use",
        id: c.id,
        name: c.function.name,
        input: input(c.function.arguments),
      });
    }
    return { role: "assistant", content: blocks };
  }
  if (m.parts) return { role: m.role, content: m.parts.map(partBlock) };
  return { role: m.role, content: m.content };
}

const blocks = (c: string | Block[]): Block[] =>
  typeof c === "string" ? [{ type: "text", text: c }] : c;

/**
 * The conversation without its system messages, in Anthropic's shape. Tool results are user
 * turns: consecutive ones (and a user message right after them) are joined into one turn, as
 * Anthropic asks every result of one assistant turn to come in the next user turn.
 */
export function anthropicMessages(prompt: readonly PromptMessage[]): AnthropicMessage[] {
  const out: AnthropicMessage[] = [];
  let joinable = false;
  for (const m of prompt) {
    if (m.role === "system") continue;
    const next = toAnthropic(m as PromptMessage & { role: "user" | "assistant" | "tool" });
    const last = out.at(-1);
    if (joinable && last && next.role === "user") {
      last.content = [...blocks(last.content), ...blocks(next.content)];
    } else {
      out.push(next);
    }
    joinable = m.role === "tool" || (joinable && next.role === "user");
  }
  return out;
}

/** The request's tools and tool choice in Anthropic's fields (it has no response format). */
export function anthropicTooling(tooling: Tooling | undefined): Record<string, unknown> {
  if (!tooling?.tools) return {};
  const body: Record<string, unknown> = {
    tools: tooling.tools.map((t) => ({
      name: t.function.name,
      ...(t.function.description ? { description: t.function.description } : {}),
      input_schema: t.function.parameters ?? { type: "object", properties: {} },
    })),
  };
  const choice = tooling.toolChoice;
  let toolChoice: Record<string, unknown> | undefined;
  if (choice === "auto") toolChoice = { type: "auto" };
  else if (choice === "required") toolChoice = { type: "any" };
  else if (choice === "none") toolChoice = { type: "none" };
  else if (choice) toolChoice = { type: "tool", name: choice.function.name };
  if (tooling.parallelToolCalls === false && toolChoice?.type !== "none") {
    toolChoice = { ...(toolChoice ?? { type: "auto" }), disable_parallel_tool_use: true };
  }
  if (toolChoice) body.tool_choice = toolChoice;
  return body;
}
