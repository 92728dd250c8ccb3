/**
 * @module The client's address as the limits see it: `clientIp` from CF-Connecting-IP only, its
 * IPv6 /48, and the minting gate per address.
 */
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../env";
import { AppError } from "../errors";
import { DEV_LOOPBACK, ipKey, wideIpKey } from "./client-ip";
import { denyCacheFor } from "./deny-cache";
import { passWindow, rateLimitHeaders } from "./refusals";
import { storeFor } from "./select-store";

/**
 * The minting gate: one anonymous session more from this address (its /64 and, for IPv6, its
 * /48), or 429 `too_many_sessions`. A refused address is remembered by the isolate until its
 * Retry-After, so a flood of mints costs the store one call. Returns the RateLimit-* headers.
 */
export async function passMintLimit(c: Context<AppEnv>): Promise<Record<string, string>> {
  const [config, ip] = [c.get("config"), c.get("clientIp")];
  const store = storeFor(config, c.env);
  const now = store.now();
  const wide = wideOf(ip);
  const keys = [`mint:ip:${ip}`, wide && `mint:${wide}`];
  const denials = denyCacheFor(config);
  denials.refuseIfDenied(keys, now);
  const window = await store.hitSessionMint(`ip:${ip}`, wide);
  const detail = `at most ${window.limit} anonymous sessions per hour from one address`;
  try {
    return passWindow(window, now, "too_many_sessions", detail);
  } catch (e) {
    const byWide = window.limit !== config.anonSessionsPerIpHourly;
    const key = byWide ? keys[1] : keys[0];
    const retryAt = window.retryAt ?? window.reset;
    if (key)
      denials.remember(key, retryAt, "too_many_sessions", detail, rateLimitHeaders([window], now));
    throw e;
  }
}

/** The store key of the /48 an IPv6 client's /64 lies in; null for IPv4. */
export function wideOf(ip: string): string | null {
  const wide = wideIpKey(ip);
  return wide ? `ip:${wide}` : null;
}

/** Sets `clientIp` from CF-Connecting-IP only; without one, production refuses the request. */
export const clientIp = createMiddleware<AppEnv>(async function clientIp(c, next) {
  const key = ipKey(c.req.header("CF-Connecting-IP"));
  if (key) c.set("clientIp", key);
  else if (c.get("config").environment === "production") {
    throw new AppError(
      "limits_unavailable",
      "the client address is unknown, so limits cannot apply",
      { retryAfter: 60 },
    );
  } else c.set("clientIp", DEV_LOOPBACK);
  await next();
});
