/** @module The peer gateway: @portkey-ai/gateway on loopback, when it is installed by hand. */
import { readFileSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import { join } from "node:path";
import { freePort } from "../../test/support/ports";
import { agentFor } from "../lib/client";
import { sleep, spawnGroup, stopGroup } from "../lib/procs";
import { ROOT, type Stack } from "../lib/stack";
import { type BenchTarget, PEER_DIR } from "./common";

/** Whether the peer ran. */
export interface PeerStatus {
  name: string;
  status: "not installed" | "running" | "failed";
  version?: string;
  detail?: string;
}

/** Starts @portkey-ai/gateway on loopback when it is installed (see --peer-dir); never installs it. */
export async function startPortkey(
  stack: Stack,
): Promise<{ peer: PeerStatus; target?: BenchTarget }> {
  const name = "@portkey-ai/gateway";
  const require = createRequire(join(PEER_DIR, "package.json"));
  let pkgJson: string;
  try {
    pkgJson = require.resolve(`${name}/package.json`);
  } catch {
    return { peer: { name, status: "not installed" } };
  }
  const version = (JSON.parse(readFileSync(pkgJson, "utf8")) as { version: string }).version;
  const port = await freePort();
  const child = spawnGroup(
    "portkey",
    process.execPath,
    [join(pkgJson, "..", "build/start-server.js"), "--headless", `--port=${port}`],
    { cwd: ROOT },
  );
  child.stdout?.resume();
  child.stderr?.resume();
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const up = await new Promise<boolean>((resolve) => {
      const req = http.get(url, (res) => {
        res.resume();
        resolve(true);
      });
      req.on("error", () => resolve(false));
    });
    if (up) {
      return {
        peer: { name, status: "running", version },
        target: {
          name: "portkey",
          label: `peer: ${name} ${version} (Node)`,
          kind: "portkey",
          url,
          agent: agentFor(256),
          upstreamV1: `${stack.upstreamUrl}/v1`,
          next: 0,
        },
      };
    }
    await sleep(200);
  }
  await stopGroup(child);
  return { peer: { name, status: "failed", version, detail: "did not listen within 20 s" } };
}
