/**
 * @module The static page and assets, and what the page learns from the server: with Turnstile
 * on, the page's HTML carries `<meta name="turnstile-site-key">` and its CSP admits the widget.
 */
import type { Context } from "hono";
import type { AppEnv } from "../env";

/** Where Cloudflare serves the Turnstile widget's script and frame. */
export const TURNSTILE_ORIGIN = "https://challenges.cloudflare.com";

/** The site key the page is told, when Turnstile is on (and the config is valid). */
function siteKey(c: Context<AppEnv>): string | undefined {
  return (c.get("config") as AppEnv["Variables"]["config"] | undefined)?.turnstile?.siteKey;
}

/** CSP `script-src`: the widget's origin only while a site key is set. */
export function scriptSrc(c: Context): string {
  return siteKey(c as Context<AppEnv>) ? `'self' ${TURNSTILE_ORIGIN}` : "'self'";
}

/** CSP `frame-src`: the widget's frame, or none. */
export function frameSrc(c: Context): string {
  return siteKey(c as Context<AppEnv>) ? TURNSTILE_ORIGIN : "'none'";
}

/**
 * Serves a static asset. Asset responses have immutable headers, so they are copied (the
 * security headers and the request id are added like on every other response); HTML gets the
 * site key written into its head, so the page needs no extra request to learn it.
 */
export async function serveAsset(c: Context<AppEnv>): Promise<Response> {
  const asset = await c.env.ASSETS.fetch(c.req.raw);
  const res = new Response(asset.body, asset);
  const key = siteKey(c);
  if (!key || !res.headers.get("Content-Type")?.startsWith("text/html")) return res;
  // The key matched /^[A-Za-z0-9_-]+$/ in the config: nothing in it needs escaping.
  return new HTMLRewriter()
    .on("head", {
      element(head) {
        head.append(`<meta name="turnstile-site-key" content="${key}">`, { html: true });
      },
    })
    .transform(res);
}
