/** @module Starts the loopback servers the tests need (redis, Upstash REST, JWKS, fake upstream, siteverify) and stops them. */
import type { TestProject } from "vitest/node";
import { startFakeAnthropic } from "./fake-anthropic";
import { startFakeUpstream } from "./fake-upstream";
import { startJwksServer } from "./jwks-server";
import { startRedis } from "./redis";
import { startSiteverifyServer } from "./siteverify-server";
import { startUpstashServer } from "./upstash-server";
import { captureWorkerdLogs } from "./workerd-logs";

const UPSTASH_TOKEN = "local-upstash-token";

/** Vitest globalSetup: runs in Node before any test file, returns the teardown. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Drops workerd's lines for socket failures the tests cause on purpose; fails on any other.
  const workerdLogs = captureWorkerdLogs();
  const redis = await startRedis();
  const upstash = await startUpstashServer({ redisPort: redis.port, token: UPSTASH_TOKEN });
  const jwks = await startJwksServer();
  const upstream = await startFakeUpstream();
  const siteverify = await startSiteverifyServer();
  // Routes across providers (test/stream/providers/): two OpenAI-compatible fakes that read
  // `a.`/`b.` directives, a fake Anthropic, and an address where nothing listens.
  const [upstreamA, upstreamB, anthropic] = await Promise.all([
    startFakeUpstream("a"),
    startFakeUpstream("b"),
    startFakeAnthropic(),
  ]);
  const dead = await startFakeUpstream();
  const deadUrl = `${dead.url}/v1`;
  await dead.close();
  // A second, private redis + Upstash server for test/limits/redis-restart.test.ts, which kills
  // and restarts its redis: the shared one above must stay up for the files that run in parallel.
  const drillRedis = await startRedis();
  const drillUpstash = await startUpstashServer({
    redisPort: drillRedis.port,
    token: UPSTASH_TOKEN,
    redis: drillRedis,
  });

  project.provide("redisPort", redis.port);
  project.provide("upstashUrl", upstash.url);
  project.provide("upstashToken", UPSTASH_TOKEN);
  project.provide("supabaseUrl", jwks.url);
  project.provide("jwksUrl", jwks.jwksUrl);
  project.provide("jwksPrivateKeys", jwks.privateKeys);
  project.provide("upstreamUrl", `${upstream.url}/v1`);
  project.provide("drillUpstashUrl", drillUpstash.url);
  project.provide("siteverifyUrl", siteverify.url);
  project.provide("upstreamAUrl", upstreamA.url);
  project.provide("upstreamBUrl", upstreamB.url);
  project.provide("anthropicUrl", anthropic.url);
  project.provide("deadUpstreamUrl", deadUrl);

  return async () => {
    await Promise.allSettled([
      upstream.close(),
      upstreamA.close(),
      upstreamB.close(),
      anthropic.close(),
      siteverify.close(),
      jwks.close(),
      upstash.close(),
      drillUpstash.close(),
    ]);
    await Promise.allSettled([redis.stop(), drillRedis.stop()]);
    await workerdLogs.finish();
  };
}
