/** @module The native stream request's schema: one definition for GET query and POST JSON. */
import * as z from "zod";
import type { Config } from "../config";
import type { RequestFields } from "./request";

/** Longest message, in Unicode code points. */
export const MAX_MESSAGE_CHARS = 8192;
export const STREAM_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Unicode code points of `s` (what a person counts as characters, emoji included). */
export const codePoints = (s: string) => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

const content = z
  .string()
  .refine((s) => s.trim().length > 0, "must not be empty or only whitespace")
  .refine(
    (s) => codePoints(s) <= MAX_MESSAGE_CHARS,
    `must be at most ${MAX_MESSAGE_CHARS} characters`,
  );

/** A client's turn: only `user` and `assistant`; the system prompt is the operator's. */
const turn = z.strictObject({ role: z.enum(["user", "assistant"]), content });

const has = (v: unknown, key: string) =>
  typeof v === "object" && v !== null && (v as Record<string, unknown>)[key] !== undefined;

function costCap(bounds: { max: number; default: number }, fromQuery: boolean) {
  const n = z
    .number()
    .finite()
    .gt(0, "must be greater than 0")
    .max(bounds.max, `must be at most ${bounds.max}`);
  // A query string has only strings; JSON must send a number.
  const field = fromQuery
    ? z
        .string()
        .regex(/^(\d{1,4}(\.\d{1,12})?|\.\d{1,12})$/, "must be a number")
        .transform(Number)
        .pipe(n)
    : n;
  return field.default(bounds.default);
}

/**
 * The schema of a native stream request for these bounds (they depend on the config and on
 * whether the caller is anonymous); its output is what the shared checks take.
 */
export function streamInputSchema(
  config: Pick<Config, "conversation" | "registry">,
  cap: { max: number; default: number },
  fromQuery: boolean,
) {
  const { maxMessages, maxPromptChars } = config.conversation;
  const messages = z
    .array(turn)
    .min(1, "must hold at least one message")
    .max(maxMessages, `must hold at most ${maxMessages} messages`);
  const base = z.strictObject({
    message: content.optional(),
    // A conversation cannot travel in a query string.
    messages: fromQuery
      ? z.undefined({ error: "send a conversation as a POST JSON body" }).optional()
      : messages.optional(),
    model: z.enum(config.registry.ids).default(config.registry.defaultModel),
    stream_id: z.string().regex(STREAM_ID, "must match ^[A-Za-z0-9_-]{1,64}$").optional(),
    cost_cap_usd: costCap(cap, fromQuery),
  });
  return base
    .refine(
      // Runs even when other fields failed, so a request missing both is told so at once.
      (v: unknown) => has(v, "message") || has(v, "messages"),
      { path: ["message"], message: "send message or messages", when: () => true },
    )
    .superRefine((v, ctx) => {
      const messages = v.messages;
      if (messages === undefined || messages.length === 0) return;
      if (v.message !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["messages"],
          message: "send message or messages, not both",
        });
        return;
      }
      const last = messages.length - 1;
      if (messages[last]?.role !== "user") {
        ctx.addIssue({
          code: "custom",
          path: ["messages", last, "role"],
          message: "the last message must be from the user",
        });
      }
      let chars = 0;
      for (const m of messages) chars += codePoints(m.content);
      if (chars > maxPromptChars) {
        ctx.addIssue({
          code: "custom",
          path: ["messages"],
          message: `must hold at most ${maxPromptChars} characters in all`,
        });
      }
    })
    .transform(
      (v): RequestFields => ({
        model: v.model,
        messages: v.messages ?? [{ role: "user", content: v.message as string }],
        streamId: v.stream_id,
        costCapUsd: v.cost_cap_usd,
      }),
    );
}
