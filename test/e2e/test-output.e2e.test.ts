/**
 * @module What a green `npm test` prints from workerd. Runs vitest on the small workerd project
 * of test/fixtures/workerd-logs: a Worker that catches a refused connection and a server that
 * hangs up prints nothing with the suite's filter (test/support/workerd-logs.ts) and the three
 * kinds of lines without it; a Worker whose waitUntil rejects fails the run and names the error.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "./dev-server";

interface Run {
  code: number | null;
  output: string;
}

/** `vitest run` on the fixture project, for the fixture files matching `filter`. */
function runFixture(filter: string, env: Record<string, string> = {}): Promise<Run> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env, FORCE_COLOR: "0" };
  // This run's own vitest variables would make the child think it is a worker of this run.
  for (const key of Object.keys(childEnv)) if (key.startsWith("VITEST")) delete childEnv[key];
  const config = join(ROOT, "test/fixtures/workerd-logs/vitest.config.ts");
  const vitest = join(ROOT, "node_modules/vitest/vitest.mjs");
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [vitest, "run", "--config", config, filter], {
      cwd: ROOT,
      env: childEnv,
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group, so a kill takes its workerd along.
      detached: true,
    });
    let output = "";
    child.stdout.on("data", (d) => {
      output += String(d);
    });
    child.stderr.on("data", (d) => {
      output += String(d);
    });
    // Within the test's own timeout, so a stuck run is killed rather than left behind.
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    }, 50_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe("a green run's output", () => {
  it("has no workerd exception lines for socket failures a Worker catches", async () => {
    const [filtered, raw] = await Promise.all([
      runFixture("caught"),
      runFixture("caught", { MAGICBOX_WORKERD_LOGS: "raw" }),
    ]);
    expect(filtered.code, filtered.output).toBe(0);
    expect(filtered.output).toContain("1 passed");
    expect(filtered.output).not.toMatch(/uncaught exception|^exception = /m);
    // Without the filter the same run prints what workerd logs for the caught failures.
    expect(raw.code, raw.output).toBe(0);
    expect(raw.output).toContain("disconnected: connect(): Connection refused");
    expect(raw.output).toContain("premature EOF in HTTP entity body");
    expect(raw.output).toContain(
      "uncaught exception; source = Uncaught (in promise); stack = Error: Network connection lost.",
    );
  }, 60_000);

  it("fails, naming the error, when a Worker's waitUntil rejects", async () => {
    const run = await runFixture("background");
    // The test itself passes: only the filter's check at teardown sees the rejection.
    expect(run.output).toContain("1 passed");
    expect(run.code).toBe(1);
    expect(run.output).toContain("workerd printed 2 uncaught exception(s) during a green run");
    expect(run.output).toContain("Error: background work failed");
  }, 60_000);
});
