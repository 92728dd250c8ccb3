/** @module The built-in demo provider: a deterministic answer, token by token, for development without a key. */
import type { Provider, ProviderStream, UpstreamReader } from "./provider";

/** Pause between demo tokens, so the page visibly streams. */
export const DEMO_TOKEN_DELAY_MS = 30;

/** The demo's answer to `message`: the same words for the same message, every time. */
export function demoAnswer(message: string): string[] {
  const topic = message.trim().split(/\s+/).slice(0, 12).join(" ");
  const text =
    `This is the demo provider answering, because no OPENAI_API_KEY is configured. ` +
    `You asked: "${topic}". In production a real model streams its answer here, token by token, ` +
    `while the gateway meters its cost, enforces your limits and records every stream in the ledger. ` +
    `Set OPENAI_API_KEY in .dev.vars to talk to a real model.`;
  return text.split(/(?<= )/);
}

/** A provider that needs no network; `delayMs` between tokens. */
export function demoProvider(delayMs = DEMO_TOKEN_DELAY_MS): Provider {
  return {
    id: "demo",
    async open({ prompt, maxTokens, signal }): Promise<ProviderStream> {
      const answer = demoAnswer(prompt.at(-1)?.content ?? "");
      const tokens = answer.slice(0, Math.max(1, maxTokens));
      let i = 0;
      let finished = false;
      // The pending read's timer and its resolve, so `cancel` can end it at once.
      let waiting: { timer: ReturnType<typeof setTimeout>; done: () => void } | null = null;
      const events: UpstreamReader = {
        async read() {
          if (signal.aborted) throw signal.reason;
          if (finished) return null;
          if (i === tokens.length) {
            finished = true;
            return [{ type: "finish", reason: i < answer.length ? "length" : "stop" }];
          }
          const text = tokens[i++] as string;
          const delay = i === 1 ? 0 : delayMs;
          const arrived = await new Promise<boolean>((resolve) => {
            waiting = { timer: setTimeout(() => resolve(true), delay), done: () => resolve(false) };
          });
          waiting = null;
          return arrived ? [{ type: "delta", text }] : null;
        },
        async cancel() {
          finished = true;
          if (waiting) {
            clearTimeout(waiting.timer);
            waiting.done();
          }
        },
      };
      return { provider: "demo", events };
    },
  };
}
