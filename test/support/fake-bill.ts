/**
 * @module The fake upstream's bill (directive `bill=1`): what a provider whose tokenizer is o200k
 * would charge for one request, counted with gpt-tokenizer. The budget soak compares it with what
 * the gateway recorded, so the gateway's arithmetic is judged by the provider's own count, not by
 * itself. Loaded only by a request that asks for it, so the other tests and the bench never pay
 * for the tokenizer.
 */
import type { FakeBill } from "./upstream-record";

type O200k = typeof import("gpt-tokenizer/model/gpt-4o");
let loading: Promise<O200k> | null = null;

/** The o200k tokenizer, loaded once on first use. */
export const loadO200k = (): Promise<O200k> => {
  loading ??= import("gpt-tokenizer/model/gpt-4o");
  return loading;
};

/** The chat as gpt-tokenizer reads it (content that is not a string counts as its JSON). */
function chatOf(messages: readonly { role: string; content: unknown }[]) {
  return messages.map((m) => ({
    role: (m.role === "system" || m.role === "assistant" ? m.role : "user") as
      | "system"
      | "assistant"
      | "user",
    content: typeof m.content === "string" ? m.content : JSON.stringify(m.content),
  }));
}

/**
 * The bill of one request. `chunks`: the text of every chunk written to the socket. `think`: the
 * hidden reasoning the directive asked for, `thought` whether its silence ran out; a request cut
 * during it is billed its whole bound (`max_completion_tokens`): the fake cannot tell how far the
 * thinking got and a real provider may bill all of it. Reasoning the model finished counts against
 * that bound as it does at OpenAI.
 */
export function billOf(
  tok: O200k,
  messages: readonly { role: string; content: unknown }[],
  chunks: readonly string[],
  think: { tokens: number; thought: boolean; bound: number | null },
): FakeBill {
  const cutWhileThinking = think.tokens > 0 && !think.thought;
  const hidden = cutWhileThinking
    ? (think.bound ?? think.tokens)
    : Math.min(think.tokens, think.bound ?? think.tokens);
  let visible = 0;
  for (const c of chunks) visible += tok.encode(c).length;
  return {
    promptTokens: tok.encodeChat(chatOf(messages), "gpt-4o").length,
    completionTokens: visible + hidden,
    hiddenReasoningTokens: hidden,
    cutWhileThinking,
  };
}
