/** @module What the conversation tests share: posting a conversation, a history of turns, and the done frame. */
import type { PromptMessage } from "../../src/stream/prompt";
import { testEnv } from "./app";
import { fakeMessage, postAs, type Who } from "./gate";
import type { SseEvent } from "./sse";

export type Turn = { role: string; content: unknown } & Record<string, unknown>;

/** POSTs `body` to the stream endpoint as `who`. */
export const post = (who: Who, body: unknown, bindings = testEnv()) =>
  postAs(who, "/api/v1/stream", body, bindings);

/** A three-turn history whose last user message carries a fake directive. */
export function history(options: Record<string, string | number> = {}) {
  const { id, message } = fakeMessage(options, "And the second point?");
  const messages: PromptMessage[] = [
    { role: "user", content: "Give me two points about rivers." },
    { role: "assistant", content: "1. They flow.\n2. They **carve** valleys." },
    { role: "user", content: message },
  ];
  return { id, messages };
}

export const doneOf = (events: SseEvent[]) => events.find((e) => e.event === "done")?.data ?? {};
