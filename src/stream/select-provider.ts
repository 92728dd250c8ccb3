/** @module Chooses the provider for a request: OpenAI-compatible with a key, the demo in development. */
import { createMiddleware } from "hono/factory";
import type { Config } from "../config";
import type { AppEnv } from "../env";
import { AppError } from "../errors";
import { demoProvider } from "./providers/demo";
import { openAiProvider } from "./providers/openai";
import type { Provider } from "./providers/provider";

const providers = new WeakMap<Config, Provider>();

/** The provider for this config, built once; throws `model_unavailable` in production without a key. */
export function providerFor(config: Config): Provider {
  let provider = providers.get(config);
  if (!provider) {
    if (config.openai.apiKey) {
      provider = openAiProvider({ apiKey: config.openai.apiKey, baseUrl: config.openai.baseUrl });
    } else if (config.environment === "development") {
      provider = demoProvider();
    } else {
      throw new AppError("model_unavailable", "no model provider is configured", {
        retryAfter: 60,
      });
    }
    providers.set(config, provider);
  }
  return provider;
}

/** Fails with `model_unavailable` before any limit or quota is spent when no provider can answer. */
export const requireProvider = createMiddleware<AppEnv>(async function requireProvider(c, next) {
  providerFor(c.get("config"));
  await next();
});
