/**
 * @module The OpenAI-compatible input adapter: a chat-completions body, checked, ending in the
 * same validated request as the native API. Unsupported parameters name themselves in errors.
 */
import * as z from "zod";
import type { Config } from "../config";
import type { PromptMessage } from "../stream/prompt";
import type { RequestFields } from "./request";
import { codePoints } from "./stream-input";

/** Message content: a string, or text parts (what SDKs send for multi-part user messages). */
const content = z
  .union(
    [z.string(), z.array(z.strictObject({ type: z.literal("text"), text: z.string() })).min(1)],
    { error: "must be a string or a list of text parts" },
  )
  .transform((c) => (typeof c === "string" ? c : c.map((p) => p.text).join("")));

const message = z.strictObject({
  role: z.enum(["system", "developer", "user", "assistant"], {
    error: "must be system, developer, user or assistant (no tools here)",
  }),
  content,
  name: z.string().max(64).optional(),
});

/** A parameter this gateway does not offer: present at all, it is a 400 naming it. */
const unsupported = (what: string) => z.never({ error: `${what} are not supported` }).optional();

const penalty = z.number().min(-2).max(2).nullish();

/** What the OpenAI surface reads besides the request: how to answer. */
export interface ChatReply {
  stream: boolean;
  includeUsage: boolean;
}

/** The chat-completions schema for these bounds; its output is the shared fields plus the reply mode. */
export function chatInputSchema(
  config: Pick<Config, "conversation" | "registry">,
  cap: { max: number; default: number },
) {
  const { maxMessages, maxPromptChars } = config.conversation;
  return z
    .strictObject({
      model: z.enum(config.registry.ids),
      messages: z
        .array(message)
        .min(1, "must hold at least one message")
        .max(maxMessages, `must hold at most ${maxMessages} messages`),
      stream: z.boolean().nullish(),
      stream_options: z.strictObject({ include_usage: z.boolean().optional() }).nullish(),
      max_tokens: z.number().int().positive().nullish(),
      max_completion_tokens: z.number().int().positive().nullish(),
      temperature: z.number().min(0).max(2).nullish(),
      top_p: z.number().min(0).max(1).nullish(),
      stop: z.union([z.string(), z.array(z.string()).max(4)]).nullish(),
      presence_penalty: penalty,
      frequency_penalty: penalty,
      seed: z.number().int().nullish(),
      user: z.string().max(256).nullish(),
      n: z.literal(1, { error: "only n = 1 is supported" }).nullish(),
      cost_cap_usd: z
        .number()
        .finite()
        .gt(0, "must be greater than 0")
        .max(cap.max, `must be at most ${cap.max}`)
        .default(cap.default),
      tools: unsupported("tools"),
      tool_choice: unsupported("tools"),
      functions: unsupported("functions"),
      function_call: unsupported("functions"),
      response_format: unsupported("response formats"),
      logprobs: unsupported("logprobs"),
      top_logprobs: unsupported("logprobs"),
    })
    .superRefine((v, ctx) => {
      let chars = 0;
      for (const m of v.messages) chars += codePoints(m.content);
      if (chars > maxPromptChars) {
        ctx.addIssue({
          code: "custom",
          path: ["messages"],
          message: `must hold at most ${maxPromptChars} characters in all`,
        });
      }
    })
    .transform((v): { fields: RequestFields; reply: ChatReply } => {
      const bounds = [v.max_tokens, v.max_completion_tokens].filter((n) => typeof n === "number");
      const sampling = {
        temperature: v.temperature ?? undefined,
        top_p: v.top_p ?? undefined,
        stop: v.stop ?? undefined,
        presence_penalty: v.presence_penalty ?? undefined,
        frequency_penalty: v.frequency_penalty ?? undefined,
        seed: v.seed ?? undefined,
      };
      return {
        fields: {
          model: v.model,
          // `developer` is OpenAI's newer name for `system`; other servers know only `system`.
          messages: v.messages.map(
            (m): PromptMessage => ({
              role: m.role === "developer" ? "system" : m.role,
              content: m.content,
            }),
          ),
          costCapUsd: v.cost_cap_usd,
          maxTokens: bounds.length > 0 ? Math.min(...bounds) : null,
          // Undefined values vanish from the upstream's JSON body.
          sampling: Object.fromEntries(Object.entries(sampling).filter(([, x]) => x !== undefined)),
        },
        reply: {
          stream: v.stream === true,
          includeUsage: v.stream === true && v.stream_options?.include_usage === true,
        },
      };
    });
}
