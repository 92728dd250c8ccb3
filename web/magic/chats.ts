/**
 * @module The conversations kept in this browser: an index (titles, last change, which one is
 * open) and each conversation's turns under its own key, so saving during a stream rewrites
 * one conversation, not all of them. A conversation joins the list with its first question.
 */
import { parseTurns, type Turn } from "./store";

/** One conversation in the list. */
export interface ChatMeta {
  id: string;
  title: string;
  /** The title was given by hand (it no longer follows the first question). */
  renamed: boolean;
  /** ms since the epoch of the last change. */
  updated: number;
}

const INDEX = "magicBox.chats";
const CHAT_PREFIX = "magicBox.chat.";
/** Where the single conversation of earlier versions was kept; moved into the list once. */
const OLD_KEY = "magicBox.conversation";
const TITLE_CHARS = 60;

/** A title from a question: its first line, cut at a word near TITLE_CHARS. */
export function titleOf(question: string): string {
  const line = question.trim().split("\n")[0]?.trim() ?? "";
  if (line.length <= TITLE_CHARS) return line || "New chat";
  const cut = line.slice(0, TITLE_CHARS);
  return `${cut.slice(0, cut.lastIndexOf(" ") > 30 ? cut.lastIndexOf(" ") : TITLE_CHARS)}…`;
}

const newId = () => `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

function readMeta(v: unknown): ChatMeta | null {
  const o = v as Partial<ChatMeta> | null;
  if (!o || typeof o.id !== "string" || !/^[\w-]{1,40}$/.test(o.id)) return null;
  return {
    id: o.id,
    title: typeof o.title === "string" && o.title ? o.title.slice(0, 200) : "New chat",
    renamed: o.renamed === true,
    updated: typeof o.updated === "number" ? o.updated : 0,
  };
}

/** What the list needs of a Storage (tests pass a Map-backed one). */
export type KeyValue = Pick<Storage, "getItem" | "setItem" | "removeItem">;

/** Storage for this page: localStorage, or (where the browser refuses it) memory for this visit. */
export function pageStorage(): KeyValue {
  try {
    localStorage.getItem(INDEX);
    return localStorage;
  } catch {
    const memory = new Map<string, string>();
    return {
      getItem: (k) => memory.get(k) ?? null,
      setItem: (k, v) => void memory.set(k, v),
      removeItem: (k) => void memory.delete(k),
    };
  }
}

/** The conversations in `storage`; `now` is the clock (tests pin it). */
export function createChats(storage: KeyValue = pageStorage(), now: () => number = Date.now) {
  let chats: ChatMeta[] = [];
  let current = "";
  const read = (key: string): unknown => {
    try {
      return JSON.parse(storage.getItem(key) ?? "null");
    } catch {
      return null;
    }
  };
  const write = (key: string, value: unknown): boolean => {
    try {
      storage.setItem(key, JSON.stringify(value));
      return true;
    } catch {
      return false;
    }
  };
  const drop = (key: string) => {
    try {
      storage.removeItem(key);
    } catch {}
  };
  const writeIndex = () => write(INDEX, { v: 1, current, chats });

  const index = read(INDEX) as { current?: unknown; chats?: unknown } | null;
  if (Array.isArray(index?.chats)) chats = index.chats.flatMap((c) => readMeta(c) ?? []);
  if (typeof index?.current === "string") current = index.current;
  const old = parseTurns(read(OLD_KEY));
  if (old.length) {
    const meta = {
      id: newId(),
      title: titleOf(old[0]?.user ?? ""),
      renamed: false,
      updated: now(),
    };
    if (write(CHAT_PREFIX + meta.id, { v: 1, turns: old })) {
      chats.push(meta);
      current = meta.id;
      drop(OLD_KEY);
      writeIndex();
    }
  }
  // An open conversation that is not in the list is an empty one, not yet asked anything.
  if (!current) current = newId();
  const find = (id: string) => chats.find((c) => c.id === id);

  return {
    /** The conversations, the most recently changed first. */
    list(): ChatMeta[] {
      return [...chats].sort((a, b) => b.updated - a.updated);
    },
    /** The id of the open conversation. */
    get current(): string {
      return current;
    },
    /** The open conversation's entry, or null while it is new and empty. */
    currentMeta(): ChatMeta | null {
      return find(current) ?? null;
    },
    /** The turns of conversation `id`. */
    turns(id: string): Turn[] {
      return parseTurns(read(CHAT_PREFIX + id));
    },
    /** Opens conversation `id`. */
    select(id: string): void {
      current = id;
      writeIndex();
    },
    /** Opens a new, empty conversation (it joins the list with its first question). */
    create(): void {
      current = newId();
      writeIndex();
    },
    /** Keeps the open conversation's `turns`; false when storage refused them. */
    save(turns: Turn[]): boolean {
      let meta = find(current);
      if (!meta) {
        if (turns.length === 0) return true;
        meta = { id: current, title: "New chat", renamed: false, updated: now() };
        chats.push(meta);
      }
      if (!meta.renamed) meta.title = titleOf(turns[0]?.user ?? "");
      meta.updated = now();
      return write(CHAT_PREFIX + meta.id, { v: 1, turns }) && writeIndex();
    },
    /** Gives conversation `id` the title `title` (an empty one goes back to its question). */
    rename(id: string, title: string): void {
      const meta = find(id);
      if (!meta) return;
      const clean = title.replace(/\s+/g, " ").trim().slice(0, 200);
      meta.renamed = clean !== "";
      meta.title = clean || titleOf(parseTurns(read(CHAT_PREFIX + id))[0]?.user ?? "");
      writeIndex();
    },
    /** Deletes conversation `id` from this browser; if it was open, a new empty one opens. */
    remove(id: string): void {
      chats = chats.filter((c) => c.id !== id);
      drop(CHAT_PREFIX + id);
      if (current === id) current = newId();
      writeIndex();
    },
  };
}

/** The conversation list's store. */
export type Chats = ReturnType<typeof createChats>;
