/** @module The page's list of chats (web/magic/chats.ts) in Node, on a Map-backed storage and a pinned clock. */
import { describe, expect, it } from "vitest";
import { createChats, type KeyValue, titleOf } from "../../web/magic/chats";
import { newTurn, type Turn } from "../../web/magic/store";

function memory(seed: Record<string, string> = {}): KeyValue & { keys(): string[] } {
  const m = new Map(Object.entries(seed));
  return {
    getItem: (k) => m.get(k) ?? null,
    setItem: (k, v) => void m.set(k, v),
    removeItem: (k) => void m.delete(k),
    keys: () => [...m.keys()].sort(),
  };
}
const answered = (user: string): Turn => ({ ...newTurn(user, 0), answer: "yes", state: "done" });

describe("the list of chats", () => {
  it("lists a chat from its first question on, newest first, titled by that question", () => {
    let now = 1_000;
    const store = memory();
    const chats = createChats(store, () => now);
    expect(chats.list()).toEqual([]);
    // An empty chat is not listed.
    expect(chats.save([])).toBe(true);
    expect(chats.list()).toEqual([]);
    chats.save([answered("What is a gateway?\nIn one line.")]);
    const first = chats.current;
    now = 2_000;
    chats.create();
    chats.save([answered("Second")]);
    expect(chats.list().map((c) => c.title)).toEqual(["Second", "What is a gateway?"]);
    // A second page load reads the same list, and the same chat is open.
    const again = createChats(store, () => now);
    expect(again.list().map((c) => c.id)).toEqual(chats.list().map((c) => c.id));
    expect(again.current).toBe(chats.current);
    again.select(first);
    expect(again.turns(first).map((t) => t.user)).toEqual(["What is a gateway?\nIn one line."]);
  });

  it("renames (an empty name goes back to the question) and deletes, opening a new chat when the open one goes", () => {
    const store = memory();
    const chats = createChats(store, () => 5);
    chats.save([answered("Colours")]);
    const id = chats.current;
    chats.rename(id, "  My   colours ");
    chats.save([answered("Colours"), answered("More")]);
    expect(chats.currentMeta()?.title).toBe("My colours");
    chats.rename(id, " ");
    expect(chats.currentMeta()?.title).toBe("Colours");
    chats.remove(id);
    expect(chats.list()).toEqual([]);
    expect(chats.current).not.toBe(id);
    expect(chats.turns(id)).toEqual([]);
    expect(store.keys()).toEqual(["magicBox.chats"]);
  });

  it("moves the one conversation of earlier versions into the list, once", () => {
    const store = memory({
      "magicBox.conversation": JSON.stringify({ v: 1, turns: [answered("Old question")] }),
    });
    const chats = createChats(store, () => 7);
    expect(chats.list().map((c) => c.title)).toEqual(["Old question"]);
    expect(chats.turns(chats.current).map((t) => t.user)).toEqual(["Old question"]);
    expect(store.getItem("magicBox.conversation")).toBeNull();
    expect(createChats(store).list()).toHaveLength(1);
  });

  it("reads a damaged index as what can be read", () => {
    const store = memory({
      "magicBox.chats": JSON.stringify({
        current: "a",
        chats: [{ id: "a", title: "Fine", updated: 1 }, { id: "../x" }, null, "junk"],
      }),
    });
    expect(
      createChats(store)
        .list()
        .map((c) => c.title),
    ).toEqual(["Fine"]);
    expect(createChats(memory({ "magicBox.chats": "{not json" })).list()).toEqual([]);
  });

  it("titles a long question by its first words", () => {
    const long =
      "Explain how the gateway holds the worst case of a stream before it starts streaming";
    expect(titleOf(long)).toBe("Explain how the gateway holds the worst case of a stream…");
    expect(titleOf("   ")).toBe("New chat");
  });
});
