/**
 * @module The list of conversations: open one, rename the open one in place, delete it after a
 * confirmation. A sidebar on wide screens; on narrow ones a panel the Chats button opens above
 * the conversation (in the page's flow, so it never covers what has focus).
 */
import { el, wordButton } from "./blocks";
import type { ChatMeta, Chats } from "./chats";

/** What choosing in the list does; the page switches the conversation. */
export interface ListHost {
  open(id: string): void;
  remove(id: string): void | Promise<void>;
  renamed(): void;
}

const when = (ms: number) => {
  const d = new Date(ms);
  return d.toDateString() === new Date().toDateString()
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleDateString([], { day: "numeric", month: "short" });
};

/** The list in `nav` (with `#chat-list`), opened on narrow screens by `toggle`. */
export function createChatList(
  nav: HTMLElement,
  toggle: HTMLButtonElement,
  confirm: HTMLDialogElement,
  chats: Chats,
  host: ListHost,
) {
  const list = nav.querySelector("#chat-list") as HTMLElement;
  const setOpen = (open: boolean) => {
    nav.classList.toggle("open", open);
    toggle.setAttribute("aria-expanded", String(open));
  };
  toggle.addEventListener("click", () => {
    const open = !nav.classList.contains("open");
    setOpen(open);
    const first = list.querySelector<HTMLElement>("[aria-current]") ?? list.querySelector("button");
    if (open) first?.focus();
  });
  nav.addEventListener("keydown", (e) => {
    if (e.key !== "Escape" || !nav.classList.contains("open")) return;
    setOpen(false);
    toggle.focus();
  });

  function renameInPlace(meta: ChatMeta, item: HTMLElement): void {
    const input = el("input", "chat-name");
    input.value = meta.title;
    input.setAttribute("aria-label", `New name for “${meta.title}”`);
    input.maxLength = 200;
    const done = (keep: boolean) => {
      if (keep) {
        chats.rename(meta.id, input.value);
        host.renamed();
      }
      render();
      list.querySelector<HTMLElement>("[aria-current]")?.focus();
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        done(true);
      } else if (e.key === "Escape") {
        e.preventDefault();
        e.stopPropagation();
        done(false);
      }
    });
    const save = el("button", "chat-save", "Save");
    save.type = "button";
    save.addEventListener("click", () => done(true));
    item.replaceChildren(input, save);
    input.focus();
    input.select();
  }

  function askToDelete(meta: ChatMeta, from: HTMLElement): void {
    (confirm.querySelector("#confirm-text") as HTMLElement).textContent =
      `“${meta.title}” and all its messages will be removed from this browser. This cannot be undone.`;
    confirm.returnValue = "";
    confirm.onclose = () => {
      if (confirm.returnValue === "delete") void host.remove(meta.id);
      else from.focus();
    };
    confirm.showModal();
    // The safe choice has focus first.
    confirm.querySelector<HTMLElement>("button[value=cancel]")?.focus();
  }

  function render(): void {
    list.replaceChildren();
    const current = chats.currentMeta();
    const metas = chats.list();
    if (metas.length === 0) list.append(el("li", "chat-none", "No chats yet."));
    for (const meta of metas) {
      const item = el("li", "chat-item");
      const open = el("button", "chat-open");
      open.type = "button";
      open.append(
        el("span", "chat-title", meta.title),
        el("span", "chat-when", when(meta.updated)),
      );
      const isCurrent = meta.id === current?.id;
      if (isCurrent) open.setAttribute("aria-current", "true");
      open.addEventListener("click", () => {
        setOpen(false);
        if (!isCurrent) host.open(meta.id);
      });
      item.append(open);
      if (isCurrent) {
        const tools = el("div", "chat-tools");
        const rename = wordButton("chat-rename", "Rename", `“${meta.title}”`);
        rename.addEventListener("click", () => renameInPlace(meta, item));
        const remove = wordButton("chat-delete", "Delete…", `“${meta.title}”`);
        remove.addEventListener("click", () => askToDelete(meta, remove));
        tools.append(rename, remove);
        item.append(tools);
      }
      list.append(item);
    }
  }

  return { render, close: () => setOpen(false) };
}
