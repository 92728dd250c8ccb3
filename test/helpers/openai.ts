/** @module What the tests of the OpenAI surface share: a completion request, the native stream, and an SSE body's data lines. */
import { testEnv } from "./app";
import { postAs, type Who } from "./gate";

/** POSTs a chat-completions body as `who`. */
export const complete = (
  who: Who,
  body: unknown,
  bindings = testEnv(),
  headers: Record<string, string> = {},
) => postAs(who, "/v1/chat/completions", body, bindings, headers);

/** POSTs a native stream body as `who`. */
export const nativeStream = (who: Who, body: unknown, bindings = testEnv()) =>
  postAs(who, "/api/v1/stream", body, bindings);

/** The `data:` payloads of an OpenAI stream, and its comment lines. */
export async function dataLines(res: Response): Promise<{ data: string[]; comments: string[] }> {
  const text = await res.text();
  const lines = text.split("\n").filter(Boolean);
  return {
    data: lines.filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)),
    comments: lines.filter((l) => l.startsWith(":")),
  };
}

export interface OpenAiError {
  error: { message: string; type: string; code: string; param: string | null };
}
