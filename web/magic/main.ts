/**
 * @module The Magic Box page: wires the header (session, quotas, budget), the list of chats,
 * the model menu, the limit banner, the message box and the open conversation together.
 */
import { ApiError, fetchModels, fetchUsage, setSignedIn } from "./api";
import { createChat } from "./chat";
import { createChatList } from "./chat-list";
import { createChats } from "./chats";
import { createComposer } from "./composer";
import { explain, LIMIT_TITLE } from "./explain";
import { createHeader } from "./header";
import { createModelMenu } from "./models";
import { createNotice } from "./notice";
import type { Copier } from "./view";

/** Set while the demo provider answered last in this browser: its banner shows from the start. */
const DEMO_KEY = "magicBox.demo";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const form = $<HTMLFormElement>("ask");
const prompt = $<HTMLTextAreaElement>("prompt");
const sendButton = $<HTMLButtonElement>("send");
const stopButton = $<HTMLButtonElement>("stop");
const status = $("status");
const quotaLine = $("quota");
const announcer = $("announce");
const demoNotice = $("demo-notice");
const header = createHeader(quotaLine, $("budget"));
const models = createModelMenu($<HTMLSelectElement>("model"), () => header.anonymous);

const say = (text: string) => {
  status.textContent = text;
};
const notice = createNotice($("notice"), $("notice-text"), $("countdown"), updateButtons, say);
const composer = createComposer({
  prompt,
  lengthNote: $("length-note"),
  editing: $("editing"),
  cancelEdit: $<HTMLButtonElement>("cancel-edit"),
  say,
});
const chats = createChats();

async function refreshUsage(): Promise<void> {
  try {
    header.usage((await fetchUsage()).usage);
  } catch (e) {
    header.unavailable();
    if (e instanceof ApiError && LIMIT_TITLE[e.code])
      notice.show(LIMIT_TITLE[e.code] ?? "", explain(e), e.retryAfter);
  } finally {
    models.fill();
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

function remember(key: string, value: string | null): void {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {}
}
try {
  demoNotice.hidden = localStorage.getItem(DEMO_KEY) !== "1";
} catch {}

const chat = createChat({
  conversation: $("conversation"),
  copy,
  model: () => $<HTMLSelectElement>("model").value,
  say,
  save(turns) {
    const saved = chats.save(turns);
    list.render();
    return saved;
  },
  refused(e, sentence) {
    notice.show(LIMIT_TITLE[e.code] ?? "", sentence, e.retryAfter);
    if (e.code === "budget_exceeded" || e.code === "model_not_allowed") void refreshUsage();
  },
  answered(d, source) {
    const demo = d.provider === "demo";
    demoNotice.hidden = !demo;
    remember(DEMO_KEY, demo ? "1" : null);
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
  edit: (text) => composer.beginEdit(text),
});

/** Opens conversation `id` (or a new one), stopping and keeping an answer in flight first. */
async function switchTo(id: string | null, sentence: string): Promise<void> {
  await chat.settle();
  if (composer.editing) composer.cancelEdit();
  if (id === null) chats.create();
  else chats.select(id);
  chat.open(chats.turns(chats.current));
  list.render();
  say(sentence);
  prompt.focus();
}

const list = createChatList(
  $("chats"),
  $<HTMLButtonElement>("chats-open"),
  $<HTMLDialogElement>("confirm-delete"),
  chats,
  {
    open: (id) =>
      void switchTo(id, `Opened “${chats.list().find((c) => c.id === id)?.title ?? "chat"}”.`),
    async remove(id) {
      const title = chats.list().find((c) => c.id === id)?.title ?? "The chat";
      const open = id === chats.current;
      // An answer still streaming into it would otherwise be saved again after the delete.
      if (open) await chat.settle();
      chats.remove(id);
      if (open) void switchTo(null, `“${title}” was deleted. This is a new chat.`);
      else {
        list.render();
        say(`“${title}” was deleted.`);
      }
    },
    renamed: () => say("Chat renamed."),
  },
);

function updateButtons(): void {
  const running = chat?.running ?? false;
  sendButton.disabled = running || notice.coolingDown;
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
  if (chat.running || notice.coolingDown) return;
  if (message.trim() === "") {
    say("Type a message first.");
    prompt.focus();
    return;
  }
  if (notice.shown) notice.hide();
  const editing = composer.editing;
  composer.sent();
  composer.set("");
  const turn = await (editing ? chat.resend(message) : chat.send(message));
  // Nothing was answered: give the text back, unless the person already typed something new.
  if (turn.state === "failed" && turn.answer === "" && prompt.value === "") composer.set(message);
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  void send();
});
prompt.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && (chat.running || composer.editing)) {
    e.preventDefault();
    if (chat.running) chat.stop();
    else composer.cancelEdit();
    return;
  }
  // Enter sends; Shift+Enter falls through to the default new line. isComposing: an IME
  // uses Enter to confirm a word, which must not send.
  if (e.key !== "Enter" || e.shiftKey || e.isComposing || e.altKey || e.ctrlKey || e.metaKey)
    return;
  e.preventDefault();
  if (chat.running) say("Wait for the answer, or press Stop.");
  else if (notice.coolingDown) say("Sending is paused until the countdown ends.");
  else void send();
});
stopButton.addEventListener("click", () => chat.stop());
$("new-chat").addEventListener("click", () => {
  if (chat.turns.length === 0 && !chat.running) {
    say("This chat is already new and empty.");
    prompt.focus();
    return;
  }
  void switchTo(null, "New chat started; the previous one is in the list of chats.");
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

chat.open(chats.turns(chats.current));
list.render();
updateButtons();
void fetchModels().then((r) => {
  models.setRegistry(r);
  // The server says the demo answers: its banner shows from the first visit, before any answer.
  if (r?.demo) demoNotice.hidden = false;
});
void refreshUsage();
