/** @module Runs the local Upstash-compatible REST server by hand, in front of an already running Redis. */
import { pathToFileURL } from "node:url";
import { startUpstashServer } from "./upstash-server";

/**
 * Starts the server from the environment: REDIS_PORT (default 6379), UPSTASH_TOKEN (default
 * "local-dev-token"), PORT (default 8079). Prints the URL; Ctrl-C stops it.
 */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const redisPort = Number(env.REDIS_PORT ?? 6379);
  const token = env.UPSTASH_TOKEN ?? "local-dev-token";
  const port = Number(env.PORT ?? 8079);
  const server = await startUpstashServer({ redisPort, token, port });
  console.log(`Upstash REST server on ${server.url} -> redis 127.0.0.1:${redisPort}`);
  console.log(`UPSTASH_REDIS_REST_URL=${server.url} UPSTASH_REDIS_REST_TOKEN=${token}`);
  const stop = (): void => {
    void server.close().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

// Start only when run as the entry point, so importing this module has no side effect.
const entry = process.argv[1];
if (entry && import.meta.url === pathToFileURL(entry).href) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
