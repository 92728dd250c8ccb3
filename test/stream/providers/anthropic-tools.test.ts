/**
 * @module Tools and images through the OpenAI surface to an Anthropic target, both ways, against
 * the fake Anthropic replaying a recorded `tool_use` stream (test/fixtures/anthropic/README.md):
 * OpenAI tools become Anthropic tools, tool calls and results become `tool_use` and `tool_result`
 * blocks, images image blocks; `input_json_delta` comes back as `delta.tool_calls`.
 */
import { describe, expect, inject, it } from "vitest";
import type { Bindings } from "../../../src/env";
import { anonCaller, expectNothingSpent, postAs, type Who } from "../../helpers/gate";
import { storeEnv } from "../../helpers/stores";
import type { AnthropicRecord } from "../../support/anthropic-record";

const ANTHROPIC = inject("anthropicUrl");

function claudeEnv(): Bindings {
  return {
    ...storeEnv("durable_object", {
      PROVIDERS: JSON.stringify({
        claude: { type: "anthropic", base_url: `${ANTHROPIC}/v1`, api_keys: ["KEY_C"] },
      }),
      MODELS: JSON.stringify({
        claude: {
          route: [{ provider: "claude", model: "claude-test" }],
          input_usd_per_million: 3,
          output_usd_per_million: 15,
        },
      }),
      ANON_MODELS: "claude",
    }),
    KEY_C: "sk-ant-secret",
  } as Bindings;
}

const SEARCH = {
  type: "function",
  function: {
    name: "google_search",
    description: "Search the web",
    parameters: { type: "object", properties: { query: { type: "string" } } },
  },
};

const complete = (who: Who, body: unknown, env: Bindings) =>
  postAs(who, "/v1/chat/completions", { model: "claude", ...(body as object) }, env);

async function seen(id: string): Promise<AnthropicRecord | null> {
  const res = await fetch(`${ANTHROPIC}/__test/requests/${id}`);
  if (res.status === 404) {
    await res.body?.cancel();
    return null;
  }
  return (await res.json()) as AnthropicRecord;
}

describe("tools to and from an Anthropic target", () => {
  it("sends the tools as Anthropic's and streams its tool_use back as delta.tool_calls", async () => {
    const env = claudeEnv();
    const who = await anonCaller();
    const id = crypto.randomUUID();
    const { res, settled } = await complete(
      who,
      {
        messages: [{ role: "user", content: `Foo Fighters? [[anthropic id=${id} rec=tool-use]]` }],
        tools: [SEARCH],
        tool_choice: "required",
        parallel_tool_calls: false,
        stream: true,
        stream_options: { include_usage: true },
      },
      env,
    );
    expect(res.status).toBe(200);
    const chunks = (await res.text())
      .split("\n")
      .filter((l) => l.startsWith("data: {"))
      .map((l) => JSON.parse(l.slice(6)));
    await settled();
    const deltas = chunks.filter((c) => c.choices.length > 0).map((c) => c.choices[0]);
    expect(deltas.map((d) => d.delta.content ?? "").join("")).toBe(
      "I'll search for the top Google hits for Foo Fighters. Let me do that for you right away.",
    );
    const pieces = deltas.flatMap((d) => d.delta.tool_calls ?? []);
    expect(pieces[0]).toEqual({
      index: 0,
      id: "toolu_01VqG2jCdyjoB9HMTFnCKeo2",
      type: "function",
      function: { name: "google_search", arguments: "" },
    });
    expect(pieces.map((p) => p.function.arguments).join("")).toBe('{"query": "Foo Fighters"}');
    expect(deltas.at(-1).finish_reason).toBe("tool_calls");
    expect(chunks.at(-1).usage).toMatchObject({ prompt_tokens: 471, completion_tokens: 80 });
    const body = (await seen(id))?.body;
    expect(body?.tools).toEqual([
      {
        name: "google_search",
        description: "Search the web",
        input_schema: SEARCH.function.parameters,
      },
    ]);
    expect(body?.tool_choice).toEqual({ type: "any", disable_parallel_tool_use: true });
  });

  it("sends tool calls, tool results and images as Anthropic's blocks", async () => {
    const env = claudeEnv();
    const who = await anonCaller();
    const id = crypto.randomUUID();
    const png = `data:image/png;base64,${btoa("\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\b\x02\0\0\0")}`;
    const { res, settled } = await complete(
      who,
      {
        messages: [
          {
            role: "user",
            content: [
              { type: "text", text: "What band is this?" },
              { type: "image_url", image_url: { url: png } },
            ],
          },
          {
            role: "assistant",
            content: "Let me search.",
            tool_calls: [
              {
                id: "toolu_1",
                type: "function",
                function: { name: "google_search", arguments: '{"query":"band"}' },
              },
              {
                id: "toolu_2",
                type: "function",
                function: { name: "google_search", arguments: '{"query":"logo"}' },
              },
            ],
          },
          { role: "tool", tool_call_id: "toolu_1", content: "Foo Fighters" },
          { role: "tool", tool_call_id: "toolu_2", content: `FF [[anthropic id=${id}]]` },
        ],
        tools: [SEARCH],
      },
      env,
    );
    expect(res.status).toBe(200);
    const answer = await res.json<{ choices: { message: { content: string } }[] }>();
    await settled();
    expect(answer.choices[0]?.message.content).toBe("Hello there!");
    expect((await seen(id))?.body.messages).toEqual([
      {
        role: "user",
        content: [
          { type: "text", text: "What band is this?" },
          {
            type: "image",
            source: { type: "base64", media_type: "image/png", data: png.split(",")[1] },
          },
        ],
      },
      {
        role: "assistant",
        content: [
          { type: "text", text: "Let me search." },
          { type: "tool_use", id: "toolu_1", name: "google_search", input: { query: "band" } },
          { type: "tool_use", id: "toolu_2", name: "google_search", input: { query: "logo" } },
        ],
      },
      {
        role: "user",
        content: [
          { type: "tool_result", tool_use_id: "toolu_1", content: "Foo Fighters" },
          { type: "tool_result", tool_use_id: "toolu_2", content: `FF [[anthropic id=${id}]]` },
        ],
      },
    ]);
  });

  it("refuses response_format for an Anthropic target with 400 naming it, spending nothing", async () => {
    const env = claudeEnv();
    const who = await anonCaller();
    const id = crypto.randomUUID();
    const { res, settled } = await complete(
      who,
      {
        messages: [{ role: "user", content: `json [[anthropic id=${id}]]` }],
        response_format: { type: "json_object" },
      },
      env,
    );
    expect(res.status).toBe(400);
    const body = await res.json<{ error: { type: string; param: string } }>();
    expect(body.error).toMatchObject({ type: "invalid_request_error", param: "response_format" });
    await settled();
    expect(await seen(id)).toBeNull();
    await expectNothingSpent(who, env);
  });
});
