/**
 * @module Cloudflare Turnstile on the page. When the server has Turnstile on, it writes
 * `<meta name="turnstile-site-key">` into the page; then each mint first gets a fresh token from
 * the widget (action `anon_session`). Without that tag nothing is loaded and no token is sent.
 */

const SCRIPT = "https://challenges.cloudflare.com/turnstile/v0/api.js?render=explicit";
const ACTION = "anon_session";

/** The part of Cloudflare's widget API the page uses. */
interface Turnstile {
  render(
    box: HTMLElement,
    options: {
      sitekey: string;
      action: string;
      callback: (token: string) => void;
      "error-callback": () => void;
      "expired-callback": () => void;
    },
  ): string;
  reset(widgetId: string | null): void;
}
declare global {
  interface Window {
    turnstile?: Turnstile;
  }
}

let loading: Promise<Turnstile> | null = null;
let widgetId: string | null = null;
/** The settle functions of the token being waited for (tokens are single-use: one per mint). */
let waiting: { resolve: (token: string) => void; reject: (e: Error) => void } | null = null;

/** The site key the server gave the page, or null when Turnstile is off. */
export function turnstileSiteKey(): string | null {
  const meta = document.querySelector('meta[name="turnstile-site-key"]');
  return meta?.getAttribute("content") || null;
}

function loadScript(): Promise<Turnstile> {
  loading ??= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = SCRIPT;
    script.async = true;
    script.onload = () =>
      window.turnstile ? resolve(window.turnstile) : reject(new Error("turnstile"));
    script.onerror = () => {
      loading = null;
      reject(new Error("turnstile"));
    };
    document.head.append(script);
  });
  return loading;
}

/** The widget's box, above the composer, made once. */
function widgetBox(): HTMLElement {
  let box = document.getElementById("turnstile");
  if (!box) {
    box = document.createElement("div");
    box.id = "turnstile";
    box.className = "turnstile";
    const form = document.getElementById("ask");
    if (form) form.prepend(box);
    else document.body.append(box);
  }
  return box;
}

/**
 * A fresh Turnstile token for one mint, or null when the server asks for none. Rejects when
 * the widget cannot load or reports an error; the mint then fails like any refused one.
 */
export async function turnstileToken(): Promise<string | null> {
  const sitekey = turnstileSiteKey();
  if (!sitekey) return null;
  const turnstile = await loadScript();
  return new Promise<string>((resolve, reject) => {
    waiting = { resolve, reject };
    const settle = (fn: "resolve" | "reject", value: string | Error) => {
      const w = waiting;
      waiting = null;
      if (fn === "resolve") w?.resolve(value as string);
      else w?.reject(value as Error);
    };
    if (widgetId === null) {
      widgetId = turnstile.render(widgetBox(), {
        sitekey,
        action: ACTION,
        callback: (token: string) => settle("resolve", token),
        "error-callback": () => settle("reject", new Error("turnstile")),
        "expired-callback": () => turnstile.reset(widgetId),
      });
    } else {
      // A used token is spent: solve again for the next one.
      turnstile.reset(widgetId);
    }
  });
}
