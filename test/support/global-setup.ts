/** @module Starts the loopback servers the tests need (redis, Upstash REST, JWKS, fake upstream) and stops them. */
import type { TestProject } from "vitest/node";
import { startFakeUpstream } from "./fake-upstream";
import { startJwksServer } from "./jwks-server";
import { startRedis } from "./redis";
import { startUpstashServer } from "./upstash-server";

const UPSTASH_TOKEN = "local-upstash-token";

/** Vitest globalSetup: runs in Node before any test file, returns the teardown. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const redis = await startRedis();
  const upstash = await startUpstashServer({ redisPort: redis.port, token: UPSTASH_TOKEN });
  const jwks = await startJwksServer();
  const upstream = await startFakeUpstream();

  project.provide("redisPort", redis.port);
  project.provide("upstashUrl", upstash.url);
  project.provide("upstashToken", UPSTASH_TOKEN);
  project.provide("supabaseUrl", jwks.url);
  project.provide("jwksUrl", jwks.jwksUrl);
  project.provide("jwksPrivateKeys", jwks.privateKeys);
  project.provide("upstreamUrl", `${upstream.url}/v1`);

  return async () => {
    await Promise.allSettled([upstream.close(), jwks.close(), upstash.close()]);
    await redis.stop();
  };
}
