/**
 * @module The API client: the bearer token (a Supabase session or an anonymous one, renewed
 * before it expires and once after a 401), authenticated fetch, error bodies, and the calls
 * the page makes (models, usage, stream). Tokens only ever travel in the Authorization header.
 */
import { createSseParser, parseObject } from "./sse";
import { turnstileToken } from "./turnstile";

const ANON_KEY = "magicBox.anonSession";
/** Renew an anonymous token when less than this many seconds of it are left. */
const RENEW_MARGIN_S = 300;
/** supabase-js v2 keeps its session under `sb-<project ref>-auth-token`. */
const SUPABASE_KEY = /^sb-[A-Za-z0-9_-]+-auth-token$/;

/** Where the bearer came from: the host page, a stored supabase-js session, or anonymous. */
export type Source = "signed-in" | "supabase" | "anonymous";

/** An error answer of the API, before or instead of a stream. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly retryAfter: number | null,
  ) {
    super(detail || code);
  }
}

const nowS = () => Date.now() / 1000;

/** The `exp` claim of a JWT, or null; read only to know when a token stops working. */
export function jwtExp(token: string): number | null {
  try {
    const part = (token.split(".")[1] ?? "").replace(/-/g, "+").replace(/_/g, "/");
    const exp: unknown = JSON.parse(atob(part)).exp;
    return typeof exp === "number" ? exp : null;
  } catch {
    return null;
  }
}

/**
 * Reads an error response. With `Accept: text/event-stream` the server sends the error as one
 * `event: error` frame, otherwise as JSON; both carry {error_code, detail, retry_after}.
 */
export async function readApiError(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => "");
  let body: Record<string, unknown> | null = null;
  if ((res.headers.get("Content-Type") ?? "").includes("text/event-stream")) {
    createSseParser((ev) => {
      if (ev.event === "error") body = parseObject(ev.data);
    }).feed(`${text}\n\n`);
  } else {
    body = parseObject(text);
  }
  const b = body as Record<string, unknown> | null;
  const header = Number.parseInt(res.headers.get("Retry-After") ?? "", 10);
  const retryAfter =
    header > 0 ? header : typeof b?.retry_after === "number" ? b.retry_after : null;
  return new ApiError(
    res.status,
    typeof b?.error_code === "string" ? b.error_code : `http_${res.status}`,
    typeof b?.detail === "string" ? b.detail : "",
    retryAfter,
  );
}

/* ------------------------------------------------------------ tokens */

interface AnonEntry {
  token: string;
  expires_at: number;
}

// localStorage can throw (storage disabled, private modes); the token then lives in memory.
let memoryAnon: AnonEntry | null = null;

function readAnon(): AnonEntry | null {
  let stored: unknown = memoryAnon;
  try {
    // Falls back to memory when storage reads work but writes do not (e.g. a full quota).
    stored = parseObject(localStorage.getItem(ANON_KEY) ?? "null") ?? memoryAnon;
  } catch {}
  const s = stored as Partial<AnonEntry> | null;
  return s && typeof s.token === "string" && typeof s.expires_at === "number"
    ? { token: s.token, expires_at: s.expires_at }
    : null;
}

function writeAnon(entry: AnonEntry): void {
  memoryAnon = entry;
  try {
    localStorage.setItem(ANON_KEY, JSON.stringify(entry));
  } catch {}
}

/** A supabase-js session in this origin's localStorage, if one is there and not expired. */
function storedSupabaseToken(): string | null {
  try {
    for (let i = 0; i < localStorage.length; i++) {
      const key = localStorage.key(i);
      if (!key || !SUPABASE_KEY.test(key)) continue;
      const value = parseObject(localStorage.getItem(key) ?? "null");
      // v2's shape, then v1's.
      const s = (value?.access_token ? value : value?.currentSession) as
        | { access_token?: unknown; expires_at?: unknown }
        | undefined;
      if (typeof s?.access_token !== "string") continue;
      const exp = typeof s.expires_at === "number" ? s.expires_at : jwtExp(s.access_token);
      if (exp !== null && exp - nowS() > 10) return s.access_token;
    }
  } catch {}
  return null;
}

let signedIn: { token: string; exp: number | null } | null = null;
let minting: Promise<AnonEntry> | null = null;

/** Uses `token` (a Supabase access token) instead of anonymous sessions; null goes back. */
export function setSignedIn(token: string | null): void {
  signedIn = token === null ? null : { token, exp: jwtExp(token) };
}

/**
 * The one call of POST /api/v1/anon_session: the place where a challenge token (Turnstile)
 * joins the body (when the server asks for one). JSON content type always, as the server
 * requires for minting.
 */
async function requestSession(): Promise<Response> {
  const turnstile_token = await turnstileToken();
  const body = turnstile_token ? { turnstile_token } : {};
  return fetch("/api/v1/anon_session", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
    cache: "no-store",
  });
}

/** Mints an anonymous token; concurrent callers share one request. */
function mintAnon(): Promise<AnonEntry> {
  minting ??= (async () => {
    const res = await requestSession();
    if (!res.ok) throw await readApiError(res);
    const body = parseObject(await res.text());
    if (typeof body?.token !== "string") throw new ApiError(res.status, "bad_session", "", null);
    // Expiry on the local clock (now + expires_in): a client clock far off the server's would
    // otherwise make a fresh token look expired and mint on every request.
    const ttl =
      Number(body.expires_in) > 0 ? Number(body.expires_in) : Number(body.expires_at) - nowS();
    const entry = { token: body.token, expires_at: Math.floor(nowS() + ttl) };
    writeAnon(entry);
    return entry;
  })().finally(() => {
    minting = null;
  });
  return minting;
}

/**
 * The bearer to send: a session given by the host page, else a stored supabase-js session,
 * else the anonymous token (renewed when nearly expired). `failed` is a token the server just
 * refused: it is never handed out again.
 */
async function credential(failed?: string): Promise<{ token: string; source: Source }> {
  if (signedIn && (signedIn.exp === null || signedIn.exp > nowS()))
    return { token: signedIn.token, source: "signed-in" };
  const supabase = storedSupabaseToken();
  if (supabase) return { token: supabase, source: "supabase" };
  const stored = readAnon();
  if (stored && stored.token !== failed && stored.expires_at - nowS() > RENEW_MARGIN_S)
    return { token: stored.token, source: "anonymous" };
  return { token: (await mintAnon()).token, source: "anonymous" };
}

/** A response and where its bearer came from. */
export interface Authed {
  res: Response;
  source: Source;
}

/**
 * fetch() with the bearer in the Authorization header (never in the URL). After a 401 an
 * anonymous token is renewed once and the request retried once; a signed-in token is retried
 * only if supabase-js has meanwhile stored a different one.
 */
export async function authedFetch(url: string, init: RequestInit): Promise<Authed> {
  const send = (token: string) =>
    fetch(url, {
      ...init,
      headers: { ...(init.headers as Record<string, string>), Authorization: `Bearer ${token}` },
    });
  const first = await credential();
  const res = await send(first.token);
  if (res.status !== 401 || first.source === "signed-in") return { res, source: first.source };
  const next = await credential(first.token);
  if (next.token === first.token) return { res, source: first.source };
  await res.body?.cancel().catch(() => {});
  return { res: await send(next.token), source: next.source };
}

/* ------------------------------------------------------------- calls */

/** One entry of GET /api/v1/models. */
export interface ModelInfo {
  id: string;
  input_usd_per_million: number;
  output_usd_per_million: number;
  anonymous: boolean;
}

/** The model registry, or null when the server does not offer it (the menu then shows the default). */
export async function fetchModels(): Promise<{
  default: string;
  models: ModelInfo[];
  demo: boolean;
} | null> {
  try {
    const res = await fetch("/api/v1/models", { headers: { Accept: "application/json" } });
    if (!res.ok) return null;
    const body = parseObject(await res.text());
    if (!body || !Array.isArray(body.models)) return null;
    const models = (body.models as Partial<ModelInfo>[]).filter(
      (m): m is ModelInfo => typeof m?.id === "string" && m.id.length <= 64,
    );
    const def = typeof body.default === "string" ? body.default : (models[0]?.id ?? "");
    return { default: def, models, demo: body.demo === true };
  } catch {
    return null;
  }
}

/** GET /api/v1/usage: the caller's quotas, spend and budget (throws ApiError). */
export async function fetchUsage(): Promise<{ usage: Record<string, unknown>; source: Source }> {
  const { res, source } = await authedFetch("/api/v1/usage", {
    headers: { Accept: "application/json" },
    cache: "no-store",
  });
  if (!res.ok) throw await readApiError(res);
  return { usage: parseObject(await res.text()) ?? {}, source };
}

/** One message of a conversation as the stream API takes it. */
export interface ChatMessage {
  role: "user" | "assistant";
  content: string;
}

/**
 * POST /api/v1/stream with the conversation, as stream `streamId` (the page chooses it, so it
 * can stop the stream before the response names it); the caller reads the body (or its error).
 */
export function openStream(
  messages: ChatMessage[],
  model: string,
  streamId: string,
  signal: AbortSignal,
): Promise<Authed> {
  return authedFetch("/api/v1/stream", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify({ messages, ...(model ? { model } : {}), stream_id: streamId }),
    signal,
    cache: "no-store",
  });
}
