/** @module Stubs for the pure units of src/stream: a model and a prompt, exact prices, streams and readers of given events, a done frame, and an OpenAI upstream behind a stub fetch. */
import { MODELS, type ModelInfo } from "../../src/stream/models";
import type { PromptMessage } from "../../src/stream/prompt";
import { openAiProvider } from "../../src/stream/providers/openai";
import type {
  ProviderStream,
  UpstreamEvent,
  UpstreamReader,
} from "../../src/stream/providers/provider";

export const mini = MODELS["gpt-4o-mini"];

/** A one-message prompt. */
export const user = (content: string): PromptMessage[] => [{ role: "user", content }];

/** Cost in µUSD with prices as exact fractions (hundred-thousandths of a µUSD per token). */
export function exactMicro(model: ModelInfo, input: number, output: number): number {
  const pin = Math.round(model.inputUsdPerMillion * 1e5);
  const pout = Math.round(model.outputUsdPerMillion * 1e5);
  return Math.ceil((input * pin + output * pout) / 1e5);
}

/** A stream of `items`, then closed. */
export function streamOf<T>(items: T[]): ReadableStream<T> {
  return new ReadableStream<T>({
    start(controller) {
      for (const item of items) controller.enqueue(item);
      controller.close();
    },
  });
}

/** Every event an UpstreamReader returns until it says null. */
export async function drain(reader: UpstreamReader): Promise<UpstreamEvent[]> {
  const out: UpstreamEvent[] = [];
  for (let batch = await reader.read(); batch !== null; batch = await reader.read()) {
    out.push(...batch);
  }
  return out;
}

/** An UpstreamReader over a stream of single events (one per read). */
export function readerOf(events: ReadableStream<UpstreamEvent>): UpstreamReader {
  const reader = events.getReader();
  return {
    read: async () => {
      const r = await reader.read();
      return r.done ? null : [r.value];
    },
    cancel: (reason) => reader.cancel(reason),
  };
}

export const doneData = {
  stream_id: "s",
  model: "m",
  provider: "p",
  upstream_model: null,
  input_tokens: 1,
  output_tokens: 1,
  cost_usd: 0,
  ttft_ms: null,
  duration_ms: 1,
  finish_reason: "stop",
  usage_source: "estimated" as const,
};

export function upstreamBody(parts: string[], end: "close" | "error"): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  let sent = false;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (!sent) {
        sent = true;
        // Everything arrives in one read, the failure right behind it.
        controller.enqueue(enc.encode(parts.join("")));
        return;
      }
      if (end === "close") controller.close();
      else controller.error(new Error("Network connection lost."));
    },
  });
}

export const sseChunk = (body: unknown) => `data: ${JSON.stringify(body)}\n\n`;
export const delta = (content: string) =>
  sseChunk({ choices: [{ index: 0, delta: { content }, finish_reason: null }] });

/** A provider stream from a stubbed fetch, with the request it was sent. */
export async function openStub(
  body: ReadableStream<Uint8Array> | null,
  status = 200,
  headers: Record<string, string> = {},
): Promise<{ stream: ProviderStream; sent: () => Record<string, unknown> }> {
  let sent: Record<string, unknown> = {};
  const fetchStub = (async (_url: RequestInfo | URL, init?: RequestInit) => {
    sent = JSON.parse(String(init?.body)) as Record<string, unknown>;
    return new Response(body, { status, headers });
  }) as typeof fetch;
  const provider = openAiProvider({ apiKey: "k", baseUrl: "http://upstream.test/v1" }, fetchStub);
  const stream = await provider.open({
    model: mini,
    prompt: user("hello"),
    maxTokens: 33,
    signal: new AbortController().signal,
  });
  return { stream, sent: () => sent };
}
