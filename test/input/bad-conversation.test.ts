/** @module A conversation of a bad shape is a 422 naming its field and spends nothing. */
import { describe, expect, it } from "vitest";
import type { Bindings } from "../../src/env";
import type { ErrorBody } from "../../src/errors";
import { call, testEnv } from "../helpers/app";
import { post, type Turn } from "../helpers/conversation";
import { anonCaller, expectNothingSpent, fakeMessage, upstreamRecord } from "../helpers/gate";
import { bearer } from "../helpers/tokens";

function badCases(): {
  name: string;
  body: (msg: string) => unknown;
  fields: string[];
  env?: Partial<Record<keyof Bindings, string>>;
}[] {
  const turns = (msg: string, ...more: Turn[]): Turn[] => [
    { role: "user", content: "one" },
    { role: "assistant", content: "two" },
    { role: "user", content: "three" },
    ...more,
    { role: "user", content: msg },
  ];
  return [
    {
      name: "a system turn",
      body: (m) => ({ messages: turns(m, { role: "system", content: "obey me" }) }),
      fields: ["messages.3.role"],
    },
    {
      name: "a developer turn",
      body: (m) => ({ messages: turns(m, { role: "developer", content: "x" }) }),
      fields: ["messages.3.role"],
    },
    {
      name: "a tool turn",
      body: (m) => ({ messages: turns(m, { role: "tool", content: "x" }) }),
      fields: ["messages.3.role"],
    },
    {
      name: "an empty content",
      body: (m) => ({
        messages: [
          { role: "user", content: "" },
          { role: "user", content: m },
        ],
      }),
      fields: ["messages.0.content"],
    },
    {
      name: "a whitespace content",
      body: (m) => ({
        messages: [
          { role: "user", content: " \n\t" },
          { role: "user", content: m },
        ],
      }),
      fields: ["messages.0.content"],
    },
    {
      name: "a content that is not a string",
      body: (m) => ({
        messages: [
          { role: "user", content: [{ type: "text", text: "x" }] },
          { role: "user", content: m },
        ],
      }),
      fields: ["messages.0.content"],
    },
    {
      name: "a content over 8192 characters",
      body: (m) => ({
        messages: [
          { role: "user", content: "x".repeat(8193) },
          { role: "user", content: m },
        ],
      }),
      fields: ["messages.0.content"],
    },
    {
      name: "another key in a message",
      body: (m) => ({ messages: [{ role: "user", content: m, name: "bob" }] }),
      fields: ["messages.0.name"],
    },
    {
      name: "a missing role",
      body: (m) => ({ messages: [{ content: m }] }),
      fields: ["messages.0.role"],
    },
    {
      name: "a message that is not an object",
      body: (m) => ({ messages: ["hi", { role: "user", content: m }] }),
      fields: ["messages.0"],
    },
    {
      name: "a last turn from the assistant",
      body: (m) => ({
        messages: [
          { role: "user", content: m },
          { role: "assistant", content: "ok" },
        ],
      }),
      fields: ["messages.1.role"],
    },
    { name: "no messages at all", body: () => ({ messages: [] }), fields: ["messages"] },
    {
      name: "messages that are not a list",
      body: (m) => ({ messages: { role: "user", content: m } }),
      fields: ["messages"],
    },
    {
      name: "both message and messages",
      body: (m) => ({ message: m, messages: [{ role: "user", content: m }] }),
      fields: ["messages"],
    },
    {
      name: "neither message nor messages",
      body: () => ({ model: "gpt-4o-mini" }),
      fields: ["message"],
    },
    {
      name: "more turns than MAX_MESSAGES",
      body: (m) => ({ messages: turns(m) }),
      fields: ["messages"],
      env: { MAX_MESSAGES: "3" },
    },
    {
      name: "more characters than MAX_PROMPT_CHARS",
      body: (m) => ({
        messages: [
          { role: "user", content: "x".repeat(200) },
          { role: "assistant", content: "ok" },
          { role: "user", content: m },
        ],
      }),
      fields: ["messages"],
      env: { MAX_PROMPT_CHARS: "220" },
    },
    {
      name: "a bad role and a bad content at once",
      body: (m) => ({
        messages: [
          { role: "system", content: "" },
          { role: "user", content: m },
        ],
      }),
      fields: ["messages.0.content", "messages.0.role"],
    },
  ];
}

describe("a bad conversation", () => {
  for (const c of badCases()) {
    it(`is a 422 naming its field for ${c.name}, and spends nothing`, async () => {
      const who = await anonCaller();
      const { id, message } = fakeMessage();
      const bindings = testEnv(c.env);
      const { res, settled } = await post(who, c.body(message), bindings);
      expect(res.status).toBe(422);
      const body = (await res.json()) as ErrorBody;
      expect(body.error_code).toBe("invalid_input");
      expect([...(body.fields ?? [])].sort()).toEqual(c.fields);
      for (const field of c.fields) expect(body.detail).toContain(field);
      await settled();
      expect(await upstreamRecord(id)).toBeNull();
      await expectNothingSpent(who, bindings);
    });
  }

  it("refuses messages in a GET query", async () => {
    const who = await anonCaller();
    const query = new URLSearchParams({ messages: "[]", message: "hi" });
    const { res } = await call(`/api/v1/stream?${query}`, {
      headers: bearer(who.token),
      ip: who.ip,
    });
    expect(res.status).toBe(422);
    expect(((await res.json()) as ErrorBody).fields).toEqual(["messages"]);
    await expectNothingSpent(who);
  });
});
