/**
 * @module The OpenAI-compatible input adapter: a chat-completions body, checked, ending in the
 * same validated request as the native API. Unsupported parameters name themselves in errors.
 */
import * as z from "zod";
import type { Config } from "../config";
import { imageTokensUpperBound } from "../stream/image-tokens";
import type { ContentPart, Tooling } from "../stream/prompt";
import type { RegistryModel } from "../stream/registry";
import { type ChatMessage, chatMessage, imagesOf, textOf, toPromptMessage } from "./chat-messages";
import { routeRefusal, toolingFields } from "./chat-tooling";
import { DATA_URL, dataUrlImageSize } from "./image-size";
import type { RequestFields } from "./request";
import { codePoints } from "./stream-input";

/** A parameter this gateway does not offer: present at all, it is a 400 naming it. */
const unsupported = (what: string) => z.never({ error: `${what} are not supported` }).optional();

const penalty = z.number().min(-2).max(2).nullish();

/** What the OpenAI surface reads besides the request: how to answer. */
export interface ChatReply {
  stream: boolean;
  includeUsage: boolean;
}

/**
 * The most `model` can bill for a message's images: each at the largest bound over the route's
 * targets (the hold covers whichever answers), its size read from a data URL's header.
 */
function imageTokens(model: RegistryModel | undefined, m: ChatMessage): number {
  let tokens = 0;
  for (const part of imagesOf(m) as Extract<ContentPart, { type: "image_url" }>[]) {
    const { url, detail = "auto" } = part.image_url;
    const size = DATA_URL.test(url) ? dataUrlImageSize(url) : null;
    let most = 0;
    for (const t of model?.route ?? []) {
      most = Math.max(
        most,
        imageTokensUpperBound(t.provider.type, t.model.upstreamName, detail, size),
      );
    }
    tokens += most;
  }
  return tokens;
}

/** The chat-completions schema for these bounds; its output is the shared fields plus the reply mode. */
export function chatInputSchema(
  config: Pick<Config, "conversation" | "registry" | "openAi">,
  cap: { max: number; default: number },
) {
  const { maxMessages, maxPromptChars } = config.conversation;
  const { maxImages } = config.openAi;
  return z
    .strictObject({
      model: z.enum(config.registry.ids),
      messages: z
        .array(chatMessage)
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
      ...toolingFields,
      functions: unsupported("functions (use tools)"),
      function_call: unsupported("functions (use tool_choice)"),
      logprobs: unsupported("logprobs"),
      top_logprobs: unsupported("logprobs"),
      audio: unsupported("audio outputs"),
      modalities: unsupported("modalities"),
    })
    .superRefine((v, ctx) => {
      let chars = 0;
      let images = 0;
      for (const m of v.messages) {
        chars += codePoints(textOf(m));
        images += imagesOf(m).length;
      }
      if (chars > maxPromptChars) {
        ctx.addIssue({
          code: "custom",
          path: ["messages"],
          message: `must hold at most ${maxPromptChars} characters in all`,
        });
      }
      if (images > maxImages) {
        ctx.addIssue({
          code: "custom",
          path: ["messages"],
          message: `must hold at most ${maxImages} images in all`,
        });
      }
      const refusal = routeRefusal(config.registry.models.get(v.model), {
        tools:
          (v.tools?.length ?? 0) > 0 ||
          v.messages.some((m) => m.role === "tool" || (m.role === "assistant" && m.tool_calls)),
        responseFormat: v.response_format != null && v.response_format.type !== "text",
        images: images > 0,
      });
      if (refusal) ctx.addIssue({ code: "custom", path: [refusal[0]], message: refusal[1] });
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
      const model = config.registry.models.get(v.model);
      const tooling: Tooling = {};
      if (v.tools) tooling.tools = v.tools;
      if (v.tool_choice != null) tooling.toolChoice = v.tool_choice;
      if (v.parallel_tool_calls != null) tooling.parallelToolCalls = v.parallel_tool_calls;
      if (v.response_format != null) tooling.responseFormat = v.response_format;
      return {
        fields: {
          model: v.model,
          messages: v.messages.map((m) => toPromptMessage(m, imageTokens(model, m))),
          ...(Object.keys(tooling).length > 0 ? { tooling } : {}),
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
