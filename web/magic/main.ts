/**
 * @module The Magic Box page: wires the header (session, quotas, budget), the model menu, the
 * limit banner with its countdown, the composer and the conversation together.
 */
import { ApiError, fetchModels, fetchUsage, type ModelInfo, setSignedIn } from "./api";
import { createChat } from "./chat";
import { explain, formatWait, LIMIT_TITLE } from "./explain";
import { createHeader } from "./header";
import type { Copier } from "./view";

const MODEL_KEY = "magicBox.model";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const form = $<HTMLFormElement>("ask");
const prompt = $<HTMLTextAreaElement>("prompt");
const modelMenu = $<HTMLSelectElement>("model");
const sendButton = $<HTMLButtonElement>("send");
const stopButton = $<HTMLButtonElement>("stop");
const newChatButton = $<HTMLButtonElement>("new-chat");
const status = $("status");
const quotaLine = $("quota");
const budgetLine = $("budget");
const notice = $("notice");
const noticeText = $("notice-text");
const countdown = $("countdown");
const announcer = $("announce");
const header = createHeader(quotaLine, budgetLine);

let cooldownUntil = 0; // ms; Send stays disabled until then
let cooldownTimer = 0;
let registry: { default: string; models: ModelInfo[] } | null = null;

const say = (text: string) => {
  status.textContent = text;
};
function showNotice(title: string, text: string, seconds: number | null): void {
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
  if (!seconds) {
    updateButtons();
    return;
  }
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
  cooldownTimer = window.setInterval(tick, 1000);
}

/** The model menu: the registry's models this caller may use, the last choice kept. */
function fillModels(): void {
  const allowed = registry?.models.filter((m) => !header.anonymous || m.anonymous) ?? [];
  const wanted = (() => {
    try {
      return localStorage.getItem(MODEL_KEY) ?? "";
    } catch {
      return "";
    }
  })();
  const ids = allowed.map((m) => m.id);
  const chosen = ids.includes(modelMenu.value)
    ? modelMenu.value
    : ids.includes(wanted)
      ? wanted
      : ids.includes(registry?.default ?? "")
        ? (registry?.default ?? "")
        : (ids[0] ?? "");
  modelMenu.replaceChildren();
  for (const m of allowed) {
    const option = new Option(m.id, m.id, false, m.id === chosen);
    option.title = `$${m.input_usd_per_million} in / $${m.output_usd_per_million} out per million tokens`;
    modelMenu.append(option);
  }
  // Without the registry, the server's default model answers.
  if (allowed.length === 0) modelMenu.append(new Option("Default model", "", true, true));
  modelMenu.disabled = allowed.length <= 1;
}

async function refreshUsage(): Promise<void> {
  try {
    header.usage((await fetchUsage()).usage);
  } catch (e) {
    header.unavailable();
    if (e instanceof ApiError && LIMIT_TITLE[e.code])
      showNotice(LIMIT_TITLE[e.code] ?? "", explain(e), e.retryAfter);
  } finally {
    fillModels();
    quotaLine.dataset.loaded = "true";
  }
}

const copy: Copier = async (text, what) => {
  try {
    await navigator.clipboard.writeText(text);
    say(`${what} copied to the clipboard.`);
    return true;
  } catch {
    say("Could not copy: this browser did not allow the page to use the clipboard.");
    return false;
  }
};

const chat = createChat({
  conversation: $("conversation"),
  copy,
  model: () => modelMenu.value,
  say,
  refused(e, sentence) {
    showNotice(LIMIT_TITLE[e.code] ?? "", sentence, e.retryAfter);
    if (e.code === "budget_exceeded") void refreshUsage();
    if (e.code === "model_not_allowed") void refreshUsage();
  },
  answered(d, source) {
    if (d.provider === "demo") $("demo-notice").hidden = false;
    header.answered(d, source);
  },
  announce(text) {
    // Emptied first, so the same words twice are announced twice.
    announcer.textContent = "";
    setTimeout(() => {
      announcer.textContent = text;
    }, 50);
  },
  busy: () => updateButtons(),
});

function updateButtons(): void {
  const running = chat?.running ?? false;
  sendButton.disabled = running || Date.now() < cooldownUntil;
  stopButton.hidden = !running;
  form.setAttribute("aria-busy", String(running));
  if (
    !running &&
    (document.activeElement === stopButton || document.activeElement === document.body)
  )
    prompt.focus();
}

async function send(): Promise<void> {
  const message = prompt.value;
  if (chat.running || Date.now() < cooldownUntil) return;
  if (message.trim() === "") {
    say("Type a message first.");
    prompt.focus();
    return;
  }
  if (!notice.hidden) notice.hidden = true;
  prompt.value = "";
  const turn = await chat.send(message);
  // Nothing was answered: give the text back, unless the person already typed something new.
  if (turn.state === "failed" && turn.answer === "" && prompt.value === "") prompt.value = message;
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  void send();
});
prompt.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && chat.running) {
    e.preventDefault();
    chat.stop();
    return;
  }
  // Enter sends; Shift+Enter falls through to the default new line. isComposing: an IME
  // uses Enter to confirm a word, which must not send.
  if (e.key !== "Enter" || e.shiftKey || e.isComposing || e.altKey || e.ctrlKey || e.metaKey)
    return;
  e.preventDefault();
  if (chat.running) say("Wait for the answer, or press Stop.");
  else if (Date.now() < cooldownUntil) say("Sending is paused until the countdown ends.");
  else void send();
});
stopButton.addEventListener("click", () => chat.stop());
newChatButton.addEventListener("click", () => {
  chat.newChat();
  say("New chat started; the previous one was deleted from this browser.");
  prompt.focus();
});
modelMenu.addEventListener("change", () => {
  try {
    localStorage.setItem(MODEL_KEY, modelMenu.value);
  } catch {}
});

declare global {
  interface Window {
    magicBox: { setSession(token: string): Promise<void>; clearSession(): Promise<void> };
  }
}
window.magicBox = {
  /** Use a Supabase access token (e.g. from supabase.auth.getSession()) instead of an anonymous one. */
  setSession(accessToken: string) {
    if (typeof accessToken !== "string" || accessToken.split(".").length !== 3)
      throw new TypeError("setSession expects a JWT access token");
    setSignedIn(accessToken);
    return refreshUsage();
  },
  /** Back to the stored supabase-js session, or to an anonymous session. */
  clearSession() {
    setSignedIn(null);
    return refreshUsage();
  },
};

updateButtons();
void fetchModels().then((r) => {
  registry = r;
  fillModels();
});
void refreshUsage();
