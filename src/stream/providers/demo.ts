/** @module The built-in demo provider: a deterministic answer, token by token, for development without a key. */
import type { Provider, ProviderStream, UpstreamEvent } from "./provider";

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
    async open({ message, maxTokens, signal }): Promise<ProviderStream> {
      const tokens = demoAnswer(message).slice(0, Math.max(1, maxTokens));
      let i = 0;
      let timer: number | undefined;
      const events = new ReadableStream<UpstreamEvent>({
        pull(controller) {
          if (signal.aborted) return controller.error(signal.reason);
          if (i === tokens.length) {
            controller.enqueue({
              type: "finish",
              reason: i < demoAnswer(message).length ? "length" : "stop",
            });
            controller.close();
            return;
          }
          const text = tokens[i++] as string;
          return new Promise<void>((resolve) => {
            timer = setTimeout(
              () => {
                controller.enqueue({ type: "delta", text });
                resolve();
              },
              i === 1 ? 0 : delayMs,
            );
          });
        },
        cancel() {
          if (timer !== undefined) clearTimeout(timer);
        },
      });
      return { provider: "demo", events };
    },
  };
}
