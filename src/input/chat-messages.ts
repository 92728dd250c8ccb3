/**
 * @module The messages of a chat-completions body: text, image parts in user messages, assistant
 * tool calls and `tool` results, each ending in a PromptMessage. Images are counted and sized
 * here; their token bound is the route's to set (see chat-input.ts).
 */
import * as z from "zod";
import type { ContentPart, PromptMessage, ToolCall } from "../stream/prompt";
import { DATA_URL } from "./image-size";

const text = z.strictObject({ type: z.literal("text"), text: z.string() });
const textContent = z.union([z.string(), z.array(text).min(1)], {
  error: "must be a string or a list of text parts",
});

/** An `https:` URL or a base64 data URL of a PNG, JPEG, GIF or WebP image. */
const imageUrl = z
  .string()
  .refine(
    (u) => DATA_URL.test(u) || /^https:\/\/[^\s/]+/.test(u),
    "must be an https: URL or a data:image/(png|jpeg|gif|webp);base64, URL",
  );
const image = z.strictObject({
  type: z.literal("image_url"),
  image_url: z.strictObject({
    url: imageUrl,
    detail: z.enum(["low", "high", "auto"]).optional(),
  }),
});
const userContent = z.union([z.string(), z.array(z.union([text, image])).min(1)], {
  error: "must be a string or a list of text and image_url parts",
});

const toolCall = z.strictObject({
  id: z.string().min(1).max(256),
  type: z.literal("function"),
  function: z.strictObject({ name: z.string().min(1).max(64), arguments: z.string() }),
});

const joined = (c: string | { text: string }[]) =>
  typeof c === "string" ? c : c.map((p) => p.text).join("");

const system = z.strictObject({
  role: z.enum(["system", "developer"]),
  content: textContent,
  name: z.string().max(64).optional(),
});
const user = z.strictObject({
  role: z.literal("user"),
  content: userContent,
  name: z.string().max(64).optional(),
});
const assistant = z.strictObject({
  role: z.literal("assistant"),
  content: textContent.nullish(),
  name: z.string().max(64).optional(),
  refusal: z.string().nullish(),
  tool_calls: z.array(toolCall).min(1).max(128).optional(),
});
const tool = z.strictObject({
  role: z.literal("tool"),
  content: textContent,
  tool_call_id: z.string().min(1).max(256),
});

/** One message of the body, read by its role. */
export const chatMessage = z.discriminatedUnion("role", [system, user, assistant, tool], {
  error: "must be system, developer, user, assistant or tool",
});
export type ChatMessage = z.output<typeof chatMessage>;

/** The image parts of a message (only user messages have any). */
export function imagesOf(m: ChatMessage): Extract<ContentPart, { type: "image_url" }>[] {
  if (m.role !== "user" || typeof m.content === "string") return [];
  return m.content.filter((p) => p.type === "image_url");
}

/** The text a message carries (for the character bound). */
export function textOf(m: ChatMessage): string {
  if (m.role === "user") {
    return typeof m.content === "string"
      ? m.content
      : m.content.map((p) => (p.type === "text" ? p.text : "")).join("");
  }
  return m.content == null ? "" : joined(m.content);
}

/**
 * The message as the upstream receives it. `developer` is OpenAI's newer name for `system`;
 * other servers know only `system`. `imageTokens` is the bound of its images, from the route.
 */
export function toPromptMessage(m: ChatMessage, imageTokens: number): PromptMessage {
  const content = textOf(m);
  switch (m.role) {
    case "system":
    case "developer":
      return { role: "system", content };
    case "user":
      if (typeof m.content === "string" || imagesOf(m).length === 0)
        return { role: "user", content };
      return { role: "user", content, parts: m.content, imageTokens };
    case "assistant":
      return m.tool_calls
        ? { role: "assistant", content, toolCalls: m.tool_calls as ToolCall[] }
        : { role: "assistant", content };
    case "tool":
      return { role: "tool", content, toolCallId: m.tool_call_id };
  }
}
