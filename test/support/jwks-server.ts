/** @module A JWKS server on loopback that publishes an ES256 and an RS256 public key, like a Supabase project. */
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
  const server: Server = createServer((req, res) => {
    if (req.url === "/auth/v1/.well-known/jwks.json") {
      fetches++;
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(body);
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
