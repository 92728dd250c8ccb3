/**
 * @module A JWKS server on loopback that publishes an ES256 and an RS256 public key, like a Supabase project.
 * The key set answers on `/auth/v1/.well-known/jwks.json` and on any `<prefix>/auth/v1/.well-known/jwks.json`
 * (a unique prefix gives a test its own JWKS address, so its own key-set cache in the worker and its
 * own fetch count); `GET /__test/fetches?path=<path>` tells the tests how often a path was fetched.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK } from "jose";

export interface JwksServer {
  /** Plays the Supabase project URL: issuer `${url}/auth/v1`. */
  url: string;
  jwksUrl: string;
  privateKeys: { es256: JWK; rs256: JWK };
  /** How many times the key set was fetched. */
  fetches(): number;
  close(): Promise<void>;
}

async function keyPair(alg: "ES256" | "RS256", kid: string) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const pub = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  const priv = { ...(await exportJWK(privateKey)), kid, alg };
  return { pub, priv };
}

/** Starts the JWKS server on a free loopback port. */
export async function startJwksServer(): Promise<JwksServer> {
  const es = await keyPair("ES256", "es256-test-key");
  const rs = await keyPair("RS256", "rs256-test-key");
  const body = JSON.stringify({ keys: [es.pub, rs.pub] });
  let fetches = 0;
  const fetchesByPath = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (req.method === "GET" && url.pathname.endsWith("/auth/v1/.well-known/jwks.json")) {
      fetches++;
      fetchesByPath.set(url.pathname, (fetchesByPath.get(url.pathname) ?? 0) + 1);
      // A key set under /down-*/ plays a JWKS endpoint that is failing.
      if (url.pathname.startsWith("/down-")) {
        res.writeHead(503).end();
        return;
      }
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(body);
      return;
    }
    if (req.method === "GET" && url.pathname === "/__test/fetches") {
      const path = url.searchParams.get("path");
      const count = path === null ? fetches : (fetchesByPath.get(path) ?? 0);
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(JSON.stringify({ fetches: count }));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    jwksUrl: `${url}/auth/v1/.well-known/jwks.json`,
    privateKeys: { es256: es.priv, rs256: rs.priv },
    fetches: () => fetches,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
