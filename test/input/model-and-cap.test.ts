/** @module Which models and cost caps a caller may ask for (ANON_MODELS, ANON_COST_CAP_MAX_USD at their defaults), and the max-tokens parameter each model takes. */
import { describe, expect, it } from "vitest";
import type { ErrorBody } from "../../src/errors";
import { maxOutputTokens, usdToMicro } from "../../src/stream/cost";
import { MODELS } from "../../src/stream/models";
import type { PromptMessage } from "../../src/stream/prompt";
import { testEnv } from "../helpers/app";
import { history, post } from "../helpers/conversation";
import {
  anonCaller,
  expectNothingSpent,
  fakeMessage,
  freshIp,
  upstreamRecord,
} from "../helpers/gate";
import { readEvents } from "../helpers/sse";
import { supabaseHs256 } from "../helpers/tokens";

describe("anonymous callers (ANON_MODELS, ANON_COST_CAP_MAX_USD at their defaults)", () => {
  const defaults = () => testEnv({ ANON_MODELS: undefined, ANON_COST_CAP_MAX_USD: undefined });

  it("get 403 model_not_allowed for a model outside ANON_MODELS, after auth, spending nothing", async () => {
    const who = await anonCaller();
    const bindings = defaults();
    const { id, message } = fakeMessage();
    const { res, settled } = await post(who, { message, model: "gpt-4o" }, bindings);
    expect(res.status).toBe(403);
    expect(((await res.json()) as ErrorBody).error_code).toBe("model_not_allowed");
    await settled();
    expect(await upstreamRecord(id)).toBeNull();
    await expectNothingSpent(who, bindings);
    // Authentication comes first: without a token it is a 401.
    const anon = await post({ token: "x.y.z", ip: who.ip }, { message, model: "gpt-4o" }, bindings);
    expect(anon.res.status).toBe(401);
  });

  it("run under a cap of at most and by default ANON_COST_CAP_MAX_USD", async () => {
    const bindings = defaults();
    const over = await anonCaller();
    const refused = await post(over, { message: "hi", cost_cap_usd: 0.021 }, bindings);
    expect(refused.res.status).toBe(422);
    expect(((await refused.res.json()) as ErrorBody).fields).toEqual(["cost_cap_usd"]);
    await expectNothingSpent(over, bindings);

    const who = await anonCaller();
    const { id, message } = fakeMessage({ tokens: 1 });
    const { res, settled } = await post(who, { message }, bindings);
    expect(res.status).toBe(200);
    await readEvents(res);
    await settled();
    const prompt: PromptMessage[] = [{ role: "user", content: message }];
    expect((await upstreamRecord(id))?.maxTokens).toBe(
      maxOutputTokens(MODELS["gpt-4o-mini"], prompt, 20_000),
    );
  });

  it("leave signed-in users free to pick any model and a larger cap", async () => {
    const bindings = defaults();
    const token = await supabaseHs256();
    const { id, message } = fakeMessage({ tokens: 1 });
    const { res, settled } = await post(
      { token, ip: freshIp() },
      { message, model: "gpt-4o", cost_cap_usd: 0.5 },
      bindings,
    );
    expect(res.status).toBe(200);
    await readEvents(res);
    await settled();
    expect((await upstreamRecord(id))?.model).toBe("gpt-4o");
  });
});

describe("the max-tokens parameter", () => {
  it.each([
    ["o4-mini", "max_completion_tokens"],
    ["gpt-5-mini", "max_completion_tokens"],
    ["gpt-4o-mini", "max_tokens"],
    ["gpt-4.1-mini", "max_tokens"],
  ] as const)("is sent to %s as %s, derived from the cap", async (model, param) => {
    const who = await anonCaller();
    const { id, messages } = history({ tokens: 2 });
    const cap = 0.002;
    const { res, settled } = await post(who, { messages, model, cost_cap_usd: cap });
    expect(res.status).toBe(200);
    await readEvents(res);
    await settled();
    const seen = await upstreamRecord(id);
    const expected = maxOutputTokens(MODELS[model], messages, usdToMicro(cap));
    expect(expected).toBeGreaterThan(0);
    expect(MODELS[model].maxTokensParam).toBe(param);
    if (param === "max_completion_tokens") {
      expect(seen).toMatchObject({ maxCompletionTokens: expected, maxTokens: null });
    } else {
      expect(seen).toMatchObject({ maxTokens: expected, maxCompletionTokens: null });
    }
  });
});
