/**
 * @module The tooling of a chat-completions body (`tools`, `tool_choice`,
 * `parallel_tool_calls`, `response_format`) and what a route's targets can honour of it.
 */
import * as z from "zod";
import type { RegistryModel } from "../stream/registry";

const functionTool = z.strictObject({
  type: z.literal("function"),
  function: z.strictObject({
    name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must match ^[A-Za-z0-9_-]{1,64}$"),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullish(),
  }),
});

/** The tooling fields of the body schema. */
export const toolingFields = {
  tools: z.array(functionTool).min(1).max(128).nullish(),
  tool_choice: z
    .union([
      z.enum(["none", "auto", "required"]),
      z.strictObject({
        type: z.literal("function"),
        function: z.strictObject({ name: z.string().min(1).max(64) }),
      }),
    ])
    .nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  response_format: z
    .discriminatedUnion("type", [
      z.strictObject({ type: z.literal("text") }),
      z.strictObject({ type: z.literal("json_object") }),
      z.strictObject({
        type: z.literal("json_schema"),
        json_schema: z.strictObject({
          name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "must match ^[A-Za-z0-9_-]{1,64}$"),
          description: z.string().optional(),
          schema: z.record(z.string(), z.unknown()).optional(),
          strict: z.boolean().nullish(),
        }),
      }),
    ])
    .nullish(),
};

/**
 * Why a route cannot carry this request, as [param, message], or null when every target can:
 * a response format needs `openai` targets (Anthropic and Workers AI have no such field);
 * tools and images need `openai` or `anthropic` targets (the translation exists for those).
 */
export function routeRefusal(
  model: RegistryModel | undefined,
  wants: { tools: boolean; responseFormat: boolean; images: boolean },
): [string, string] | null {
  const types = new Set(model?.route.map((t) => t.provider.type) ?? []);
  if (wants.responseFormat && [...types].some((t) => t !== "openai")) {
    return ["response_format", "is not supported by this model's provider"];
  }
  if (types.has("workers-ai")) {
    if (wants.tools)
      return ["tools", "tools and tool messages are not supported by this model's provider"];
    if (wants.images) return ["messages", "images are not supported by this model's provider"];
  }
  return null;
}
