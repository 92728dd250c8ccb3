/**
 * @module A Turnstile siteverify stand-in on loopback. A token `v:<json>` makes it answer that
 * verdict (`{"success", "hostname", "action"}`), as Cloudflare would for a widget solved on that
 * host with that action; any other token is refused like a forged one. `POST /down` answers 500,
 * `POST /garbage` a 200 that is not JSON, `POST /hang` never (a siteverify that cannot be
 * reached: a refused connection would do, but workerd logs each one as an uncaught exception).
 * `GET /__test/calls?token=t` tells how often token `t` was checked and what was sent with it.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { TURNSTILE_TEST_SECRET } from "./siteverify-tokens";

export interface SiteverifyServer {
  /** The siteverify URL (TURNSTILE_VERIFY_URL). */
  url: string;
  /** How often siteverify was asked, in all. */
  calls(): number;
  close(): Promise<void>;
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  let text = "";
  for await (const chunk of req) text += String(chunk);
  if (/json/.test(req.headers["content-type"] ?? "")) {
    const body = JSON.parse(text) as Record<string, string>;
    return new URLSearchParams(body);
  }
  return new URLSearchParams(text);
}

/** Starts the stand-in on a free loopback port. */
export async function startSiteverifyServer(): Promise<SiteverifyServer> {
  let calls = 0;
  const byToken = new Map<string, { calls: number; remoteip: string | null }>();
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (req.method === "GET" && url.pathname === "/__test/calls") {
      const seen = byToken.get(url.searchParams.get("token") ?? "");
      reply(200, { calls: seen?.calls ?? 0, remoteip: seen?.remoteip ?? null });
      return;
    }
    if (req.method !== "POST") return reply(405, {});
    void readForm(req).then(
      (form) => {
        calls++;
        const token = form.get("response") ?? "";
        const seen = byToken.get(token) ?? { calls: 0, remoteip: null };
        byToken.set(token, { calls: seen.calls + 1, remoteip: form.get("remoteip") });
        if (url.pathname === "/down") return reply(500, { error: "down" });
        if (url.pathname === "/garbage") return res.writeHead(200).end("<html>");
        if (url.pathname === "/hang") return; // close() destroys the socket
        if (form.get("secret") !== TURNSTILE_TEST_SECRET) {
          return reply(200, { success: false, "error-codes": ["invalid-input-secret"] });
        }
        if (!token.startsWith("v:")) {
          return reply(200, { success: false, "error-codes": ["invalid-input-response"] });
        }
        reply(200, {
          "error-codes": [],
          challenge_ts: new Date().toISOString(),
          ...JSON.parse(token.slice(2)),
        });
      },
      () => reply(400, { success: false, "error-codes": ["bad-request"] }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/siteverify`,
    calls: () => calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
