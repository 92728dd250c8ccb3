/**
 * @module A loopback OpenAI-compatible chat-completions server for the browser tests: the test
 * says what the model answers to a question (answer text, reasoning), and reads back every
 * request body the gateway sent, so a test can check the conversation the model received.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** What the model answers to one question. */
export interface Scripted {
  text: string;
  reasoning?: string;
  /** Characters per streamed chunk (default 12): answers arrive in pieces, as real ones do. */
  chunk?: number;
  /** ms between chunks (default 5). */
  delayMs?: number;
  /** ms between the response's headers and its first chunk (default 0): a model that thinks first. */
  firstDelayMs?: number;
  /** The output tokens reported in `usage` (default: one per chunk), at most the request's max_tokens, as a real upstream. */
  completionTokens?: number;
  /** Send no usage at all (a provider that reports none): the gateway records an upper bound. */
  noUsage?: boolean;
}

/** One request the gateway made. */
export interface SeenRequest {
  model: string;
  messages: { role: string; content: string }[];
  maxTokens: number | null;
}

export interface ChatUpstream {
  /** The base URL for OPENAI_BASE_URL (ends in /v1). */
  baseUrl: string;
  /** Every request so far, oldest first. */
  requests: SeenRequest[];
  /** Answers `question` (the last user message, exactly) with `answer` from now on. */
  script(question: string, answer: Scripted): void;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const frame = (delta: Record<string, unknown>, finish: string | null = null) =>
  `data: ${JSON.stringify({
    id: "chatcmpl-e2e",
    object: "chat.completion.chunk",
    created: 0,
    model: "fake",
    choices: [{ index: 0, delta, finish_reason: finish }],
  })}\n\n`;

/** Splits `text` into pieces of `n` code points. */
const pieces = (text: string, n: number) => {
  const cps = [...text];
  const out: string[] = [];
  for (let i = 0; i < cps.length; i += n) out.push(cps.slice(i, i + n).join(""));
  return out;
};

/** Starts the server on a free loopback port. Unscripted questions get "You said: <question>". */
export async function startChatUpstream(): Promise<ChatUpstream> {
  const scripts = new Map<string, Scripted>();
  const requests: SeenRequest[] = [];
  const server: Server = createServer(async (req, res) => {
    if (req.method !== "POST" || req.url !== "/v1/chat/completions") {
      res.writeHead(404).end();
      return;
    }
    const parts: Buffer[] = [];
    for await (const part of req) parts.push(part as Buffer);
    const body = JSON.parse(Buffer.concat(parts).toString("utf8")) as Record<string, unknown>;
    const messages = (body.messages ?? []) as SeenRequest["messages"];
    const maxTokens = body.max_completion_tokens ?? body.max_tokens;
    requests.push({
      model: String(body.model),
      messages,
      maxTokens: typeof maxTokens === "number" ? maxTokens : null,
    });
    const question = messages.at(-1)?.content ?? "";
    const answer = scripts.get(question) ?? { text: `You said: ${question}` };
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    let gone = false;
    res.on("close", () => {
      gone = true;
    });
    const chunks = [
      ...pieces(answer.reasoning ?? "", answer.chunk ?? 12).map((t) => ({ reasoning_content: t })),
      ...pieces(answer.text, answer.chunk ?? 12).map((t) => ({ content: t })),
    ];
    if (answer.firstDelayMs) await sleep(answer.firstDelayMs);
    for (const delta of chunks) {
      if (gone) return;
      res.write(frame(delta));
      await sleep(answer.delayMs ?? 5);
    }
    res.write(frame({}, "stop"));
    const reported = Math.min(
      answer.completionTokens ?? chunks.length,
      Number(maxTokens) || Infinity,
    );
    const usage = { prompt_tokens: 20, completion_tokens: reported, total_tokens: 0 };
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    if (!answer.noUsage)
      res.write(`data: ${JSON.stringify({ id: "chatcmpl-e2e", choices: [], usage })}\n\n`);
    res.end("data: [DONE]\n\n");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    script: (question, answer) => scripts.set(question, answer),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
