/**
 * @module What workerd prints into a test run, sorted into noise and failures.
 *
 * vitest-pool-workers runs workerd verbose, and workerd then prints each socket failure a Worker
 * meets as three lines: the kj error ("connect(): Connection refused", "stream disconnected
 * prematurely") and an "uncaught exception" pair for the JS error it turns into ("Network
 * connection lost."). It prints them also when the Worker catches that error: a bare
 * `try { await fetch("http://127.0.0.1:1/") } catch {}` prints all three. The fault tests cause
 * such failures on purpose (a store on a closed port, an Upstash server that hangs up, a killed
 * redis), so a green run used to print about 36 of them, and the pool adds a "WebSocket peer
 * disconnected" as each file's runner closes.
 *
 * `captureWorkerdLogs` drops exactly those shapes and lets every other line through. Any other
 * "uncaught exception" line (a rejected `waitUntil`, a throw out of a Durable Object method) is
 * kept and remembered, and `finish` throws with it, so the run fails: vitest itself reports only
 * rejections nobody handles inside the test isolate, not these. The one thing the filter cannot
 * tell apart is a `waitUntil` that rejects with a socket error: workerd prints it as the same
 * pair. The Worker's background work catches its own errors (src/stream/stage.ts,
 * src/observe/request.ts, src/limits/middleware.ts), and a test that calls the Worker through
 * test/helpers/app.ts sees any rejected `waitUntil` at `settled()`, which throws it.
 *
 * `MAGICBOX_WORKERD_LOGS=raw` turns the filter off, to see what workerd prints.
 */

/** The kj errors workerd prints for a socket that fails, and the pool's own close of a runner. */
const SOCKET_FAILURE = [
  /^exception = kj\/async-io(?:-unix)?\.c\+\+:\d+: disconnected: connect\(\): Connection refused\n/,
  /^exception = kj\/async-io(?:-unix)?\.c\+\+:\d+: disconnected: stream disconnected prematurely\n/,
  /^exception = kj\/compat\/http\.c\+\+:\d+: disconnected: premature EOF in HTTP entity body; /,
  /^exception = workerd\/api\/web-socket\.c\+\+:\d+: disconnected: WebSocket peer disconnected\n/,
  // The pair for the JS error a socket failure becomes, caught or not.
  /^uncaught exception; source = Uncaught \(in promise\); stack = Error: Network connection lost\.\n/,
  /^uncaught exception; exception = workerd\/jsg\/\S+: disconnected: jsg\.Error: Network connection lost\.\n/,
];

const UNCAUGHT = /^uncaught exception\b/;

type Write = typeof process.stdout.write;

export interface WorkerdLogs {
  /**
   * Rejects when workerd printed an uncaught exception that is not noise, after a moment for
   * the last lines to arrive through workerd's pipe. The filter stays: the pool closes its
   * runners, and prints their "WebSocket peer disconnected", after teardown.
   */
  finish(): Promise<void>;
}

/** How long `finish` waits for workerd's last lines. */
const LAST_LINES_MS = 250;

/** How one chunk written to stdout or stderr is treated. */
export function classify(chunk: string): "noise" | "uncaught" | "other" {
  if (SOCKET_FAILURE.some((shape) => shape.test(chunk))) return "noise";
  return UNCAUGHT.test(chunk) ? "uncaught" : "other";
}

/**
 * Filters what is written to this process's stdout and stderr from now on. The pool writes each
 * workerd message as one chunk, `${message}\n`, so a chunk is judged whole.
 */
export function captureWorkerdLogs(): WorkerdLogs {
  if (process.env.MAGICBOX_WORKERD_LOGS === "raw") return { finish: async () => {} };
  const uncaught: string[] = [];
  const filter = (stream: NodeJS.WriteStream) => {
    const write: Write = stream.write.bind(stream);
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      const text = typeof chunk === "string" ? chunk : "";
      const kind = classify(text);
      if (kind === "noise") {
        // The callback form of write still expects its callback.
        const done = rest.find((r) => typeof r === "function") as (() => void) | undefined;
        done?.();
        return true;
      }
      if (kind === "uncaught") uncaught.push(text.split("\n")[0] ?? text);
      return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
    }) as Write;
  };
  filter(process.stdout);
  filter(process.stderr);
  return {
    async finish() {
      await new Promise((resolve) => setTimeout(resolve, LAST_LINES_MS));
      if (uncaught.length > 0) {
        // vitest reports a teardown error ("error during close") without failing the run.
        process.exitCode = 1;
        throw new Error(
          `workerd printed ${uncaught.length} uncaught exception(s) during a green run:\n${uncaught.join("\n")}`,
        );
      }
    },
  };
}
