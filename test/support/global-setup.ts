/** @module Starts the loopback servers the tests need (redis, Upstash REST, JWKS, fake upstream) and stops them. */
import type { TestProject } from "vitest/node";
import { startFakeUpstream } from "./fake-upstream";
import { startJwksServer } from "./jwks-server";
import { startRedis } from "./redis";
import { LATE_ANSWER_MS, startUpstashServer } from "./upstash-server";

const UPSTASH_TOKEN = "local-upstash-token";

/** Vitest globalSetup: runs in Node before any test file, returns the teardown. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const redis = await startRedis();
  const upstash = await startUpstashServer({ redisPort: redis.port, token: UPSTASH_TOKEN });
  const jwks = await startJwksServer();
  const upstream = await startFakeUpstream();
  // A second, private redis + Upstash server for test/drills.test.ts, which kills and restarts
  // its redis: the shared one above must stay up for the files that run in parallel.
  const drillRedis = await startRedis();
  const drillUpstash = await startUpstashServer({
    redisPort: drillRedis.port,
    token: UPSTASH_TOKEN,
    redis: drillRedis,
  });

  project.provide("redisPort", redis.port);
  project.provide("upstashUrl", upstash.url);
  project.provide("upstashToken", UPSTASH_TOKEN);
  project.provide("upstashLateAnswerMs", LATE_ANSWER_MS);
  project.provide("supabaseUrl", jwks.url);
  project.provide("jwksUrl", jwks.jwksUrl);
  project.provide("jwksPrivateKeys", jwks.privateKeys);
  project.provide("upstreamUrl", `${upstream.url}/v1`);
  project.provide("drillUpstashUrl", drillUpstash.url);

  return async () => {
    await Promise.allSettled([
      upstream.close(),
      jwks.close(),
      upstash.close(),
      drillUpstash.close(),
    ]);
    await Promise.allSettled([redis.stop(), drillRedis.stop()]);
  };
}
