/**
 * @module The setup of the chat browser tests: a real `wrangler dev` (default limits, fresh
 * state) whose upstream is a scripted loopback OpenAI-compatible server, and Chromium.
 */
import { randomBytes } from "node:crypto";
import type { Browser, Page, Request } from "playwright-core";
import { afterAll, beforeAll } from "vitest";
import { type Opened, openPage, withChromium } from "./browser";
import { type ChatUpstream, startChatUpstream } from "./chat-upstream";
import { type DevServer, startWranglerDev } from "./dev-server";

/** The HS256 secret the server accepts Supabase tokens with. */
export const SUPABASE_JWT_SECRET = randomBytes(32).toString("base64url");
/** Where earlier versions of the page kept their one conversation (moved into the list on load). */
export const CONVERSATION_KEY = "magicBox.conversation";
/** The list of chats: `{v, current, chats: [{id, title, renamed, updated}]}`. */
export const CHATS_KEY = "magicBox.chats";
/** Context options that let a test read what the page copied. */
export const CLIPBOARD = { permissions: ["clipboard-read", "clipboard-write"] };

/** What a test file gets: the upstream, the server and a page opener, once setup has run. */
export interface ChatRig {
  upstream(): ChatUpstream;
  server(): DevServer;
  open(options?: Parameters<typeof openPage>[2]): Promise<Opened>;
}

/** Starts the upstream, wrangler dev and Chromium for the calling test file, and stops them after. */
export function useChatRig(): ChatRig {
  let upstream: ChatUpstream | undefined;
  let server: DevServer | undefined;
  let browser: Browser | undefined;
  // Why setup failed: every test rethrows it, so a missing browser FAILS them (not skipped).
  let setupError: Error | undefined;

  beforeAll(async () => {
    try {
      upstream = await startChatUpstream();
      [server, browser] = await withChromium(
        startWranglerDev({
          OPENAI_API_KEY: "sk-e2e-not-a-real-key",
          OPENAI_BASE_URL: upstream.baseUrl,
          SECRET_KEY: randomBytes(32).toString("base64url"),
          SUPABASE_JWT_SECRET,
          // Every test opens a fresh profile and so mints a token; keep room for all of them.
          ANON_SESSIONS_PER_IP_HOURLY: "40",
        }),
      );
    } catch (e) {
      setupError = e instanceof Error ? e : new Error(String(e));
    }
  }, 60_000);

  afterAll(async () => {
    await browser?.close().catch(() => {});
    await server?.stop();
    await upstream?.close();
  });

  const ready = () => {
    if (setupError) throw setupError;
    if (!browser || !server || !upstream) throw new Error("setup did not finish");
    return { browser, server, upstream };
  };
  return {
    upstream: () => ready().upstream,
    server: () => ready().server,
    open: (options = {}) => {
      const { browser, server } = ready();
      return openPage(browser, `${server.url}/magic/`, options);
    },
  };
}

/** The JSON bodies of the page's POST /api/v1/stream requests, in order. */
export function streamBodies(
  page: Page,
): { messages: { role: string; content: string }[]; model?: string }[] {
  const bodies: ReturnType<typeof streamBodies> = [];
  page.on("request", (r: Request) => {
    if (r.method() === "POST" && new URL(r.url()).pathname === "/api/v1/stream")
      bodies.push(r.postDataJSON());
  });
  return bodies;
}

export const turns = (page: Page) => page.locator(".turn");
export const lastTurn = (page: Page) => page.locator(".turn").last();
export const answerText = (page: Page) => lastTurn(page).locator(".answer-text");

/** A markdown answer with a heading, emphasis, a list, a table, a code block and a link. */
export const MARKDOWN_ANSWER = [
  "## Three ways it saves money",
  "",
  "The gateway keeps **every** answer under a cap, *before* it is sent:",
  "",
  "- a hold of the worst case at admission",
  "- `max_tokens` derived from the cap",
  "- a meter that stops the stream at the cap",
  "",
  "| Limit | Default |",
  "| --- | ---: |",
  "| Anonymous per hour | 20 |",
  "| Anonymous in total | 100 |",
  "",
  "```js",
  "const cap = 0.02; // USD",
  'console.log("cap:", cap);',
  "```",
  "",
  "See [the docs](https://example.com/docs).",
].join("\n");
export const CODE = 'const cap = 0.02; // USD\nconsole.log("cap:", cap);';
