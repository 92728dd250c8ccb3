/**
 * Magic Box chat page: gets a bearer token (a Supabase session or an anonymous one), streams
 * the answer of POST /api/v1/stream as Server-Sent Events and renders it as it arrives.
 * A plain ES module with no build step: the page's CSP allows only same-origin scripts.
 * Model and user text only ever reach the page through textContent / Text nodes.
 */

import { turnstileToken } from "./turnstile.js";

const ANON_KEY = "magicBox.anonSession";
/** Renew an anonymous token when less than this many seconds of it are left. */
const RENEW_MARGIN_S = 300;
/** supabase-js v2 keeps its session under `sb-<project ref>-auth-token`. */
const SUPABASE_KEY = /^sb-[A-Za-z0-9_-]+-auth-token$/;

/**
 * A small Server-Sent Events parser (the WHATWG "interpreting an event stream" rules).
 * feed() takes decoded text in pieces of any size; onEvent gets {event, data, id} for each
 * complete event. Lines may end in CRLF, LF or CR, also when a CRLF is split across two
 * pieces; `:` lines are comments; several `data:` lines join with "\n". An event cut off
 * by the end of the stream (no blank line after it) is never dispatched.
 */
export function createSseParser(onEvent) {
  let pending = "";
  let scanned = 0; // how much of `pending` holds no line end, so it is not scanned twice
  let skipLf = false; // the last piece ended in CR: an LF at the start of the next is its pair
  let data = [];
  let event = "";
  let lastId = "";

  function line(text) {
    if (text === "") {
      // Blank line: dispatch. An event without data lines is dropped, as the spec says.
      if (data.length > 0)
        onEvent({ event: event || "message", data: data.join("\n"), id: lastId });
      data = [];
      event = "";
      return;
    }
    if (text.charCodeAt(0) === 58 /* ":" */) return;
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.charCodeAt(0) === 32 /* " " */) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "event") event = value;
    else if (field === "id" && !value.includes("\0")) lastId = value;
    // `retry` and unknown fields are ignored: this page does not reconnect by itself.
  }

  return {
    feed(text) {
      if (text === "") return;
      if (skipLf) {
        skipLf = false;
        if (text.charCodeAt(0) === 10) text = text.slice(1);
      }
      pending += text;
      let start = 0;
      for (let i = scanned; i < pending.length; i++) {
        const c = pending.charCodeAt(i);
        if (c !== 10 && c !== 13) continue;
        line(pending.slice(start, i));
        if (c === 13) {
          if (i + 1 === pending.length) skipLf = true;
          else if (pending.charCodeAt(i + 1) === 10) i++;
        }
        start = i + 1;
      }
      pending = pending.slice(start);
      scanned = pending.length;
    },
  };
}

/** An error answer of the API, before or instead of a stream. */
class ApiError extends Error {
  constructor(status, code, detail, retryAfter) {
    super(detail || code);
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

const nowS = () => Date.now() / 1000;

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** The `exp` claim of a JWT, or null; read only to know when a token stops working. */
function jwtExp(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(part)).exp;
    return typeof exp === "number" ? exp : null;
  } catch {
    return null;
  }
}

/**
 * Reads an error response. With `Accept: text/event-stream` the server sends the error as one
 * `event: error` frame, otherwise as JSON; both carry {error_code, detail, retry_after}.
 */
async function readApiError(res) {
  const text = await res.text().catch(() => "");
  let body = null;
  if ((res.headers.get("Content-Type") || "").includes("text/event-stream")) {
    createSseParser((ev) => {
      if (ev.event === "error") body = parseJson(ev.data);
    }).feed(`${text}\n\n`);
  } else {
    body = parseJson(text);
  }
  const header = Number.parseInt(res.headers.get("Retry-After") || "", 10);
  const retryAfter =
    header > 0 ? header : typeof body?.retry_after === "number" ? body.retry_after : null;
  return new ApiError(
    res.status,
    typeof body?.error_code === "string" ? body.error_code : `http_${res.status}`,
    typeof body?.detail === "string" ? body.detail : "",
    retryAfter,
  );
}

/* ---------------------------------------------------------------- session */

// localStorage can throw (storage disabled, private modes); the page then keeps the token in memory.
let memoryAnon = null;
function readAnon() {
  let stored = memoryAnon;
  try {
    // Falls back to memory when storage reads work but writes do not (e.g. a full quota).
    stored = parseJson(localStorage.getItem(ANON_KEY) || "null") ?? memoryAnon;
  } catch {}
  return stored && typeof stored.token === "string" && typeof stored.expires_at === "number"
    ? stored
    : null;
}
function writeAnon(entry) {
  memoryAnon = entry;
  try {
    if (entry) localStorage.setItem(ANON_KEY, JSON.stringify(entry));
    else localStorage.removeItem(ANON_KEY);
  } catch {}
}

/** A supabase-js session in this origin's localStorage, if one is there and not expired. */
function storedSupabaseToken() {
  try {
    for (let i = 0; i < localStorage.length; i++) {
      const key = localStorage.key(i);
      if (!key || !SUPABASE_KEY.test(key)) continue;
      const value = parseJson(localStorage.getItem(key) || "null");
      const s = value?.access_token ? value : value?.currentSession; // v2, then v1's shape
      if (typeof s?.access_token !== "string") continue;
      const exp = typeof s.expires_at === "number" ? s.expires_at : jwtExp(s.access_token);
      if (exp !== null && exp - nowS() > 10) return s.access_token;
    }
  } catch {}
  return null;
}

let signedIn = null; // {token, exp} given by window.magicBox.setSession
let minting = null;

/** Mints an anonymous token; concurrent callers share one request. */
function mintAnon() {
  minting ??= (async () => {
    const turnstile_token = await turnstileToken();
    const res = await fetch("/api/v1/anon_session", {
      method: "POST",
      // JSON is required: a type no cross-site page can send without a CORS preflight.
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify(turnstile_token ? { turnstile_token } : {}),
      cache: "no-store",
    });
    if (!res.ok) throw await readApiError(res);
    const body = await res.json();
    if (typeof body?.token !== "string") throw new ApiError(res.status, "bad_session", "", null);
    // Expiry on the local clock (now + expires_in): a client clock far off the server's would
    // otherwise make a fresh token look expired and mint on every request.
    const ttl = Number(body.expires_in) > 0 ? Number(body.expires_in) : body.expires_at - nowS();
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
async function credential(failed) {
  if (signedIn && (signedIn.exp === null || signedIn.exp > nowS()))
    return { token: signedIn.token, source: "signed-in" };
  const supabase = storedSupabaseToken();
  if (supabase) return { token: supabase, source: "supabase" };
  const stored = readAnon();
  if (stored && stored.token !== failed && stored.expires_at - nowS() > RENEW_MARGIN_S)
    return { token: stored.token, source: "anonymous" };
  return { token: (await mintAnon()).token, source: "anonymous" };
}

/**
 * fetch() with the bearer in the Authorization header (never in the URL). After a 401 an
 * anonymous token is renewed once and the request retried once; a signed-in token is retried
 * only if supabase-js has meanwhile stored a different one.
 */
async function authedFetch(url, init) {
  const send = (token) =>
    fetch(url, { ...init, headers: { ...init.headers, Authorization: `Bearer ${token}` } });
  const first = await credential();
  const res = await send(first.token);
  if (res.status !== 401 || first.source === "signed-in") return { res, source: first.source };
  const next = await credential(first.token);
  if (next.token === first.token) return { res, source: first.source };
  await res.body?.cancel().catch(() => {});
  return { res: await send(next.token), source: next.source };
}

/* ------------------------------------------------------------------- page */

function formatUsd(n) {
  if (typeof n !== "number" || !Number.isFinite(n)) return "–";
  if (n === 0) return "$0.00";
  return `$${n < 0.01 ? n.toFixed(6) : n.toFixed(4)}`;
}
function formatMs(ms) {
  if (typeof ms !== "number") return "–";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}
function formatWait(s) {
  if (s < 60) return `${s} s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}
const capitalise = (s) => s.charAt(0).toUpperCase() + s.slice(1);

/** A plain sentence for an API error; `detail` is shown where it names what to fix or which limit. */
function explain(e, source) {
  const detail = e.detail ? `${capitalise(e.detail.replace(/\.$/, ""))}.` : "";
  switch (e.code) {
    case "unauthorized":
      return source === "anonymous"
        ? "The server did not accept this session, even after renewing it. Reload the page to try again."
        : "Your sign-in was not accepted; it may have expired. Sign in again to continue.";
    case "invalid_input":
      return `The message was not accepted. ${detail}`.trim();
    case "payload_too_large":
      return "The message is too long to send.";
    case "rate_limited":
    case "quota_exceeded":
    case "too_many_sessions":
      return detail || "A usage limit was reached.";
    case "limits_unavailable":
      return "The service cannot check usage limits right now, so it is not answering. Please try again shortly.";
    case "model_unavailable":
      return "This model is not available right now. Try the other model, or try again later.";
    case "upstream_busy":
      return "The model provider is busy. Please try again shortly.";
    case "upstream_error":
      return "The model provider failed to answer. Please try again.";
    case "network":
      return "Could not reach the server. Check your connection and try again.";
    default:
      return "Something went wrong on the server. Please try again.";
  }
}
const LIMIT_TITLE = {
  rate_limited: "Too many requests.",
  quota_exceeded: "Quota used up.",
  too_many_sessions: "Too many new sessions from this address.",
};

function boot() {
  const $ = (id) => document.getElementById(id);
  const form = $("ask");
  const prompt = $("prompt");
  const model = $("model");
  const sendButton = $("send");
  const stopButton = $("stop");
  const conversation = $("conversation");
  const status = $("status");
  const quotaLine = $("quota");
  const notice = $("notice");
  const noticeText = $("notice-text");
  const countdown = $("countdown");

  let running = null; // the AbortController of the stream in flight
  let cooldownUntil = 0; // ms; Send stays disabled until then
  let cooldownTimer = 0;
  let quotaLimits = { hourly: null, total: null };
  let spend = null;

  const say = (text) => {
    status.textContent = text;
  };

  function updateButtons() {
    sendButton.disabled = running !== null || Date.now() < cooldownUntil;
    stopButton.hidden = running === null;
    form.setAttribute("aria-busy", String(running !== null));
  }

  function showNotice(title, text, seconds) {
    notice.hidden = false;
    noticeText.replaceChildren();
    if (title) {
      const strong = document.createElement("strong");
      strong.textContent = title;
      noticeText.append(strong, " ");
    }
    noticeText.append(text);
    countdown.textContent = "";
    clearInterval(cooldownTimer);
    if (!seconds) return updateButtons();
    cooldownUntil = Date.now() + seconds * 1000;
    const tick = () => {
      const left = Math.max(0, Math.ceil((cooldownUntil - Date.now()) / 1000));
      countdown.textContent = left > 0 ? `Send is available again in ${formatWait(left)}.` : "";
      if (left === 0) {
        clearInterval(cooldownTimer);
        notice.hidden = true;
        say("You can send again.");
      }
      updateButtons();
    };
    tick();
    cooldownTimer = setInterval(tick, 1000);
  }

  /** The header line: who is asking, anonymous quota left, and spend so far. */
  function renderQuota(anonymous, hourlyLeft, totalLeft) {
    if (!anonymous) {
      quotaLine.textContent = "Signed in · no anonymous quota applies";
    } else if (typeof hourlyLeft === "number") {
      const of = (n, limit) => (typeof limit === "number" ? `${n} of ${limit}` : `${n}`);
      let text = `Anonymous · ${of(hourlyLeft, quotaLimits.hourly)} streams left this hour`;
      if (typeof totalLeft === "number") text += ` · ${of(totalLeft, quotaLimits.total)} in total`;
      quotaLine.textContent = text;
    } else {
      quotaLine.textContent = "Anonymous session";
    }
    if (spend && spend.streams > 0)
      quotaLine.textContent += ` · spent ${formatUsd(spend.total_usd)} on ${spend.streams} ${spend.streams === 1 ? "answer" : "answers"}`;
  }

  async function refreshUsage() {
    try {
      const { res } = await authedFetch("/api/v1/usage", {
        headers: { Accept: "application/json" },
        cache: "no-store",
      });
      if (!res.ok) throw await readApiError(res);
      const usage = await res.json();
      spend = usage.spend ?? null;
      const q = usage.quota;
      quotaLimits = { hourly: q?.hourly?.limit ?? null, total: q?.total?.limit ?? null };
      renderQuota(usage.anonymous === true, q?.hourly?.remaining, q?.total?.remaining);
    } catch (e) {
      // The quota line is a nicety: the page still works without it.
      quotaLine.textContent = "Usage unavailable right now";
      if (e instanceof ApiError && LIMIT_TITLE[e.code])
        showNotice(LIMIT_TITLE[e.code], explain(e), e.retryAfter);
    } finally {
      quotaLine.dataset.loaded = "true";
    }
  }

  /** One exchange in the conversation: the question, and the answer as it grows. */
  function addTurn(message) {
    $("empty")?.remove();
    const turn = document.createElement("article");
    turn.className = "turn";
    turn.dataset.state = "sending";
    const you = document.createElement("p");
    you.className = "you";
    const who = document.createElement("span");
    who.className = "sr-only";
    who.textContent = "You: ";
    const said = document.createElement("span");
    said.className = "you-text";
    said.textContent = message;
    you.append(who, said);
    const answer = document.createElement("div");
    answer.className = "answer";
    answer.setAttribute("aria-busy", "true");
    const head = document.createElement("p");
    head.className = "who";
    head.textContent = "Magic Box";
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.hidden = true;
    head.append(" ", badge);
    const text = document.createElement("p");
    text.className = "answer-text";
    const body = document.createTextNode("");
    text.append(body);
    const note = document.createElement("p");
    note.className = "note";
    note.hidden = true;
    const metrics = document.createElement("dl");
    metrics.className = "metrics";
    answer.append(head, text, note, metrics);
    turn.append(you, answer);
    conversation.append(turn);
    conversation.scrollTop = conversation.scrollHeight;

    return {
      turn,
      get text() {
        return body.data;
      },
      /** True while the reader has not scrolled up to read something else. */
      following: true,
      append(chunk) {
        const c = conversation;
        this.following = c.scrollTop + c.clientHeight >= c.scrollHeight - 80;
        body.appendData(chunk);
        if (this.following) c.scrollTop = c.scrollHeight;
      },
      metrics(pairs) {
        metrics.replaceChildren();
        for (const [key, label, value] of pairs) {
          // A <div> per pair (allowed in <dl>) keeps each label with its value when lines wrap.
          const pair = document.createElement("div");
          const dt = document.createElement("dt");
          dt.textContent = label;
          const dd = document.createElement("dd");
          dd.dataset.metric = key;
          dd.textContent = value;
          pair.append(dt, dd);
          metrics.append(pair);
        }
      },
      /** state: streaming | done | stopped | incomplete | failed */
      finish(state, sentence, badgeText) {
        turn.dataset.state = state;
        answer.removeAttribute("aria-busy");
        badge.hidden = !badgeText;
        badge.textContent = badgeText || "";
        note.hidden = !sentence;
        note.textContent = sentence || "";
      },
    };
  }

  async function send() {
    const message = prompt.value;
    if (running || Date.now() < cooldownUntil) return;
    if (message.trim() === "") {
      say("Type a message first.");
      prompt.focus();
      return;
    }
    if (!notice.hidden && Date.now() >= cooldownUntil) notice.hidden = true;
    const controller = new AbortController();
    running = controller;
    updateButtons();
    prompt.value = "";
    const view = addTurn(message);
    say("Sending…");

    let source = "anonymous";
    let outcome = null; // set by the terminal event: the stream ended as the server meant
    let outputTokens = 0;
    let cost = 0;
    try {
      const sent = await authedFetch("/api/v1/stream", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify({ message, model: model.value }),
        signal: controller.signal,
        cache: "no-store",
      });
      source = sent.source;
      const res = sent.res;
      const streamId = res.headers.get("X-Stream-Id");
      if (streamId) view.turn.dataset.streamId = streamId;
      if (!res.ok || !res.body) throw await readApiError(res);

      view.turn.dataset.state = "streaming";
      say("Answering…");
      view.metrics([["cost", "Cost so far", formatUsd(0)]]);
      const parser = createSseParser((ev) => {
        const data = parseJson(ev.data);
        if (!data || outcome) return;
        if (ev.event === "message_chunk") {
          if (typeof data.content === "string") view.append(data.content);
          if (typeof data.output_tokens === "number") outputTokens = data.output_tokens;
          if (typeof data.cost_usd === "number") cost = data.cost_usd;
          view.metrics([
            ["tokens", "Tokens", `${outputTokens} out`],
            ["cost", "Cost so far", formatUsd(cost)],
          ]);
        } else if (ev.event === "done" || ev.event === "error") {
          outcome = { event: ev.event, data };
        }
      });
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parser.feed(decoder.decode(value, { stream: true }));
        if (outcome) {
          reader.cancel().catch(() => {});
          break;
        }
      }
      parser.feed(decoder.decode());
      finishStream(view, outcome, source);
    } catch (e) {
      if (controller.signal.aborted) {
        view.finish(
          "stopped",
          view.text
            ? "You stopped this answer before it finished."
            : "Stopped before the answer started.",
          "Stopped",
        );
        say("Stopped. The partial answer is kept.");
      } else if (e instanceof ApiError) {
        failBeforeStream(view, e, source, message);
      } else {
        // fetch or read failed: the connection dropped.
        const partial = view.text !== "";
        view.finish(
          partial ? "incomplete" : "failed",
          partial
            ? "The connection dropped before the answer finished."
            : explain({ code: "network" }),
          partial ? "Incomplete" : "Not answered",
        );
        say(
          partial
            ? "The connection dropped; the answer is incomplete."
            : explain({ code: "network" }),
        );
      }
    } finally {
      running = null;
      updateButtons();
      // Last: the notes, metrics and banners added at the end change the heights.
      if (view.following) conversation.scrollTop = conversation.scrollHeight;
      if (document.activeElement === stopButton || document.activeElement === document.body)
        prompt.focus();
    }
  }

  function failBeforeStream(view, e, source, message) {
    const sentence = explain(e, source);
    view.finish("failed", sentence, "Not answered");
    say(sentence);
    // Nothing was answered: give the text back, unless the person already typed something new.
    if (prompt.value === "") prompt.value = message;
    if (LIMIT_TITLE[e.code]) {
      view.turn.dataset.errorCode = e.code;
      showNotice(LIMIT_TITLE[e.code], sentence, e.retryAfter);
    } else if (e.status === 503 && e.retryAfter) {
      showNotice("", sentence, e.retryAfter);
    }
  }

  function finishStream(view, outcome, source) {
    if (!outcome) {
      view.finish("incomplete", "The connection dropped before the answer finished.", "Incomplete");
      say("The connection dropped; the answer is incomplete.");
      return;
    }
    const d = outcome.data;
    if (outcome.event === "error") {
      const why = d.detail ? ` (${d.detail.replace(/\.$/, "")})` : "";
      const partial = view.text !== "";
      const sentence = partial
        ? `The answer broke off because of an error on the server${why}.`
        : `The server could not answer${why}.`;
      view.finish(
        partial ? "incomplete" : "failed",
        sentence,
        partial ? "Incomplete" : "Not answered",
      );
      say(sentence);
      return;
    }
    view.turn.dataset.streamId = d.stream_id || view.turn.dataset.streamId || "";
    view.metrics([
      ["tokens", "Tokens", `${d.input_tokens} in · ${d.output_tokens} out`],
      ["cost", "Cost", formatUsd(d.cost_usd)],
      ["ttft", "First token", formatMs(d.ttft_ms)],
      ["duration", "Total time", formatMs(d.duration_ms)],
      ["model", "Model", d.model],
    ]);
    const cut = {
      cost_cap: "The answer was cut short by its cost cap.",
      max_duration: "The answer was cut short: it took too long.",
      length: "The answer was cut short by the length limit.",
      content_filter: "The provider's content filter stopped the answer.",
    }[d.finish_reason];
    view.finish("done", cut || "", cut ? "Cut short" : "");
    if (d.provider === "demo") $("demo-notice").hidden = false;
    if (spend && typeof d.cost_usd === "number") {
      spend = { ...spend, total_usd: spend.total_usd + d.cost_usd, streams: spend.streams + 1 };
    }
    if (d.quota) renderQuota(true, d.quota.hourly_remaining, d.quota.total_remaining);
    else if (source !== "anonymous") renderQuota(false);
    say(`Answer complete: ${d.output_tokens} tokens, ${formatUsd(d.cost_usd)}.`);
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  prompt.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && running) {
      e.preventDefault();
      running.abort();
      return;
    }
    // Enter sends; Shift+Enter falls through to the default new line. isComposing: an IME
    // uses Enter to confirm a word, which must not send.
    if (e.key !== "Enter" || e.shiftKey || e.isComposing || e.altKey || e.ctrlKey || e.metaKey)
      return;
    e.preventDefault();
    if (running) say("Wait for the answer, or press Stop.");
    else if (Date.now() < cooldownUntil) say("Sending is paused until the countdown ends.");
    else send();
  });
  stopButton.addEventListener("click", () => running?.abort());

  window.magicBox = {
    /** Use a Supabase access token (e.g. from supabase.auth.getSession()) instead of an anonymous one. */
    setSession(accessToken) {
      if (typeof accessToken !== "string" || accessToken.split(".").length !== 3)
        throw new TypeError("setSession expects a JWT access token");
      signedIn = { token: accessToken, exp: jwtExp(accessToken) };
      return refreshUsage();
    },
    /** Back to the stored supabase-js session, or to an anonymous session. */
    clearSession() {
      signedIn = null;
      return refreshUsage();
    },
  };

  updateButtons();
  refreshUsage();
}

// Imported outside a browser (e.g. to test the parser), the module only exports.
if (typeof document !== "undefined") boot();
