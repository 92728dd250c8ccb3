/**
 * @module The built-in demo provider for development without a key: a few deterministic answers
 * (prose, a list, a table, code), chosen from the question, streamed token by token, within
 * `maxTokens`, and ending with usage that is exact by the demo's own count.
 */
import { estimateTokens, inputTokensUpperBound } from "../cost";
import type { Provider, ProviderStream, UpstreamEvent, UpstreamReader } from "./provider";

/** Pause between demo tokens, so the page visibly streams. */
export const DEMO_TOKEN_DELAY_MS = 20;

const LIST = `Here is what happens to every request, in order:

1. **Authentication**: the Bearer token is verified (401 otherwise).
2. **Input**: the body is checked against the contract (413, 415 or 422).
3. **Limits**: rate limits, quotas and budgets, in one store round trip (429 or 503).
4. **The stream**: the model's answer, metered and capped token by token.
5. **The ledger**: one record per stream, written after the response.

Ask for a table or some code to see the other kinds of answer.`;

const TABLE = `The two limits stores, side by side:

| store | used when | round trips before the first byte | decides |
| --- | --- | --- | --- |
| Upstash Redis | \`UPSTASH_REDIS_REST_URL\` is set | 1 | in one script, exactly |
| Durable Object | otherwise | 1 (two objects at once) | may refuse a little early |

Both fail closed: a store that is down answers 503 \`limits_unavailable\`.`;

const CODE = `A stream from the command line, with a fresh anonymous token:

\`\`\`sh
TOKEN=$(curl -s -X POST http://127.0.0.1:8787/api/v1/anon_session \\
  -H 'Content-Type: application/json' -d '{}' | jq -r .token)
curl -N http://127.0.0.1:8787/api/v1/stream -H "Authorization: Bearer $TOKEN" \\
  -H 'Content-Type: application/json' -d '{"message": "Say hello"}'
\`\`\`

The same from a page, in TypeScript:

\`\`\`ts
const res = await fetch("/api/v1/stream", {
  method: "POST",
  headers: { Authorization: \`Bearer \${token}\`, "Content-Type": "application/json" },
  body: JSON.stringify({ message: "Say hello" }),
});
\`\`\``;

/** Which answer a question gets: the first whose words it uses; prose otherwise. */
const ANSWERS: { asks: RegExp; text: string }[] = [
  { asks: /\b(tables?|compare|comparison|versus|vs)\b/i, text: TABLE },
  {
    asks: /\b(code|functions?|scripts?|snippets?|examples?|curl|typescript|javascript|python)\b/i,
    text: CODE,
  },
  { asks: /\b(lists?|steps|points|ideas|tips|checklist)\b/i, text: LIST },
];

function prose(message: string): string {
  const topic = message.trim().split(/\s+/).slice(0, 12).join(" ");
  return (
    `This is the demo provider answering, because no OPENAI_API_KEY is configured. ` +
    `You asked: "${topic}". In production a real model streams its answer here, token by token, ` +
    `while the gateway meters its cost, enforces your limits and records every stream in the ledger. ` +
    `Ask for a list, a table or some code to see how the page shows them, or set OPENAI_API_KEY ` +
    `in .dev.vars (then restart npm run dev) to talk to a real model.`
  );
}

/**
 * The demo's "tokens": a line break, up to five letters or three digits (with the spaces before
 * them), one other character, or a run of spaces. Most are one token by the gateway's estimator.
 */
const TOKEN = /\n+|[ \t]*[A-Za-z]{1,5}|[ \t]*\d{1,3}|[ \t]*[^\sA-Za-z\d]|[ \t]+|\s/gu;

/** Splits `text` into the demo's tokens; joined, they are `text` again. */
export function demoTokens(text: string): string[] {
  return text.match(TOKEN) ?? [];
}

/** What one chunk counts as: the meter's own rule for a delta, so running and final counts agree. */
export function demoTokenCount(chunk: string): number {
  return Math.max(1, estimateTokens(chunk));
}

/** The demo's answer to `message`, chunk by chunk: the same chunks for the same message, every time. */
export function demoAnswer(message: string): string[] {
  const text = ANSWERS.find((a) => a.asks.test(message))?.text ?? prose(message);
  return demoTokens(text);
}

/** A provider that needs no network; `delayMs` between tokens. */
export function demoProvider(delayMs = DEMO_TOKEN_DELAY_MS): Provider {
  return {
    id: "demo",
    async open({ prompt, maxTokens, signal }): Promise<ProviderStream> {
      const answer = demoAnswer(prompt.at(-1)?.content ?? "");
      // Never more than maxTokens: the chunks that fit, whole.
      const chunks: string[] = [];
      let outputTokens = 0;
      for (const chunk of answer) {
        const n = demoTokenCount(chunk);
        if (outputTokens + n > maxTokens) break;
        outputTokens += n;
        chunks.push(chunk);
      }
      // Exact by the demo's count: the input at the bound the hold used, the output as sent.
      const end: UpstreamEvent[] = [
        { type: "usage", inputTokens: inputTokensUpperBound(prompt), outputTokens },
        { type: "finish", reason: chunks.length < answer.length ? "length" : "stop" },
      ];
      let i = 0;
      let finished = false;
      // The pending read's timer and its resolve, so `cancel` can end it at once.
      let waiting: { timer: ReturnType<typeof setTimeout>; done: () => void } | null = null;
      const events: UpstreamReader = {
        async read() {
          if (signal.aborted) throw signal.reason;
          if (finished) return null;
          if (i === chunks.length) {
            finished = true;
            return end;
          }
          const text = chunks[i++] as string;
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
