/**
 * @module Chooses the provider for a request: the configured routes, the demo in development
 * when the built-in registry has no key (or a configured provider's secrets are not set).
 */
import { createMiddleware } from "hono/factory";
import type { Config } from "../config";
import type { AppEnv } from "../env";
import { AppError } from "../errors";
import { demoProvider } from "./providers/demo";
import type { Provider } from "./providers/provider";
import { routeProvider } from "./providers/route";

const providers = new WeakMap<Config, Provider>();

/** The built-in registry without its key: the demo answers in development, nothing in production. */
function isKeyless(config: Config): boolean {
  const { registry } = config;
  return (
    registry.builtIn === true &&
    registry.models.get(registry.defaultModel)?.route[0]?.provider.unavailable === true
  );
}

/** True when the built-in demo provider answers (development without a key): the page says so. */
export const answersWithDemo = (config: Config) =>
  config.environment === "development" && isKeyless(config);

/**
 * The provider for this config, built once per isolate (its breakers and key rings live as
 * long); throws `model_unavailable` in production when the built-in registry has no key.
 */
export function providerFor(config: Config, fetchImpl?: typeof fetch): Provider {
  let provider = providers.get(config);
  if (!provider) {
    const { registry } = config;
    const keyless = isKeyless(config);
    if (keyless && config.environment !== "development") {
      throw new AppError("model_unavailable", "no model provider is configured", {
        retryAfter: 60,
      });
    }
    const demo = demoProvider();
    provider = keyless
      ? demo
      : routeProvider(registry, {
          connectTimeoutMs: config.upstreamConnectTimeoutMs,
          ...(fetchImpl ? { fetchImpl } : {}),
          // Development only: production refuses a registry whose secrets are not set.
          ...(config.environment === "development"
            ? { standIn: { open: (request) => demo.open(request) } }
            : {}),
        });
    providers.set(config, provider);
  }
  return provider;
}

/** Fails with `model_unavailable` before any limit or quota is spent when no provider can answer. */
export const requireProvider = createMiddleware<AppEnv>(async function requireProvider(c, next) {
  providerFor(c.get("config"));
  await next();
});
