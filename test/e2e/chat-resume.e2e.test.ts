/**
 * @module Browser tests of resumable answers (api.md, "Resumable streams"): a reload and a few
 * seconds offline in the middle of an answer each end with the upstream's whole text exactly
 * once, resumed from the last event the page had; Stop ends the stream on the server, even right
 * after Send (the page names the stream itself); a stream the server no longer has ends with a
 * notice. Chromium against a real `wrangler dev` whose upstream the test scripts (chat-setup.ts).
 */
import type { Page, Request } from "playwright-core";
import { describe, expect, it } from "vitest";
import { ask, waitForState } from "./browser";
import { lastTurn, streamBodies, turns, useChatRig } from "./chat-setup";

const rig = useChatRig();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A plain one-paragraph answer of numbered words: a repeat or a gap shows in the text. */
const words = (tag: string, n: number) =>
  Array.from({ length: n }, (_, i) => `${tag}${String(i).padStart(3, "0")}`).join(" ");

/** The page's requests for the rest of a stream: GET /api/v1/streams/{id} and its Last-Event-ID. */
function resumes(page: Page): { id: string; after: number }[] {
  const seen: { id: string; after: number }[] = [];
  page.on("request", (r: Request) => {
    const m = /^\/api\/v1\/streams\/([^/]+)$/.exec(new URL(r.url()).pathname);
    if (m && r.method() === "GET")
      seen.push({ id: m[1] ?? "", after: Number(r.headers()["last-event-id"] ?? 0) });
  });
  return seen;
}

/** Waits until the newest answer shows at least `n` characters. */
const shown = (page: Page, n: number) =>
  page.waitForFunction(
    (min) =>
      (document.querySelector(".turn:last-of-type .answer-text")?.textContent?.length ?? 0) >= min,
    n,
    { timeout: 10_000 },
  );

/** The newest answer as the page keeps it in storage (the exact text, not the rendered one). */
async function storedAnswer(page: Page): Promise<{ answer: string; state: string }> {
  return page.evaluate(() => {
    const index = JSON.parse(localStorage.getItem("magicBox.chats") ?? "{}") as {
      current?: string;
    };
    const chat = JSON.parse(localStorage.getItem(`magicBox.chat.${index.current}`) ?? "{}") as {
      turns?: { answer: string; state: string }[];
    };
    return chat.turns?.at(-1) ?? { answer: "", state: "" };
  });
}

/** Every event of stream `id` as its owner resumes it from the start: [event, data] pairs. */
async function replay(page: Page, id: string): Promise<[string, Record<string, unknown>][]> {
  const token = await page.evaluate(
    () =>
      (JSON.parse(localStorage.getItem("magicBox.anonSession") ?? "{}") as { token?: string })
        .token ?? "",
  );
  const res = await fetch(`${rig.server().url}/api/v1/streams/${id}`, {
    headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" },
  });
  expect(res.status).toBe(200);
  return (await res.text())
    .split("\n\n")
    .filter((f) => f.includes("data:"))
    .map((f) => [
      /^event: (.*)$/m.exec(f)?.[1] ?? "message",
      JSON.parse(/^data: (.*)$/m.exec(f)?.[1] ?? "{}"),
    ]);
}

/** The anonymous hourly quota left, as /api/v1/usage tells the page's own token. */
async function quotaLeft(page: Page): Promise<number> {
  const token = await page.evaluate(
    () =>
      (JSON.parse(localStorage.getItem("magicBox.anonSession") ?? "{}") as { token?: string })
        .token ?? "",
  );
  const res = await fetch(`${rig.server().url}/api/v1/usage`, {
    headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { quota: { hourly: { remaining: number } } }).quota.hourly
    .remaining;
}

describe("Magic Box resumable answers", () => {
  it("a reload mid-answer resumes the same answer in place: every word once, from the last event shown", async () => {
    const { page, problems, close } = await rig.open();
    try {
      const bodies = streamBodies(page);
      const asked = resumes(page);
      const text = words("r", 150);
      const question = "Count slowly through a reload";
      rig.upstream().script(question, { text, chunk: 8, delayMs: 50 });
      const upstreamBefore = rig.upstream().requests.length;
      await ask(page, question);
      await shown(page, 150);
      const streamId = await lastTurn(page).getAttribute("data-stream-id");
      expect(streamId).toBeTruthy();

      await page.reload();
      await page.locator('#quota[data-loaded="true"]').waitFor();
      await waitForState(page, ["done"], 20_000);

      expect(await turns(page).count()).toBe(1);
      expect((await storedAnswer(page)).answer).toBe(text);
      expect((await lastTurn(page).locator(".answer-text").textContent())?.trim()).toBe(text);
      expect(await lastTurn(page).getAttribute("data-stream-id")).toBe(streamId);
      // One question asked, once; the rest came by resuming, from where the page had got to.
      expect(bodies).toHaveLength(1);
      expect(rig.upstream().requests.length - upstreamBefore).toBe(1);
      expect(asked.length).toBeGreaterThanOrEqual(1);
      expect(asked[0]?.id).toBe(streamId);
      expect(asked[0]?.after).toBeGreaterThan(0);
      expect(await lastTurn(page).locator(".note").isHidden()).toBe(true);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  }, 45_000);

  it("a few seconds offline mid-answer: the page reconnects and completes the same answer, every word once", async () => {
    const { page, problems, close } = await rig.open();
    try {
      const bodies = streamBodies(page);
      const asked = resumes(page);
      const text = words("o", 200);
      const question = "Count slowly while the network drops";
      rig.upstream().script(question, { text, chunk: 8, delayMs: 60 });
      await ask(page, question);
      await shown(page, 100);

      await page.context().setOffline(true);
      // The page says it is reconnecting, and keeps the answer so far.
      await expect
        .poll(() => page.locator("#status").textContent(), { timeout: 5_000 })
        .toMatch(/reconnecting/i);
      expect(await lastTurn(page).getAttribute("data-state")).toBe("streaming");
      await sleep(3_000);
      await page.context().setOffline(false);
      await waitForState(page, ["done"], 25_000);

      expect(await turns(page).count()).toBe(1);
      expect((await storedAnswer(page)).answer).toBe(text);
      expect((await lastTurn(page).locator(".answer-text").textContent())?.trim()).toBe(text);
      expect(bodies).toHaveLength(1);
      const ok = asked.filter((a) => a.after > 0);
      expect(ok.length).toBeGreaterThanOrEqual(1);
      expect(await lastTurn(page).locator(".note").isHidden()).toBe(true);
      // Chromium logs each request that failed while offline; nothing else may go wrong.
      expect(problems.filter((p) => !/ERR_INTERNET_DISCONNECTED|ERR_NETWORK/.test(p))).toEqual([]);
    } finally {
      await close();
    }
  }, 60_000);

  it("Stop sends DELETE /api/v1/streams/{id} with the bearer, and the server's stream ends stopped", async () => {
    const { page, problems, close } = await rig.open();
    try {
      const deletes: { id: string; auth: string }[] = [];
      page.on("request", (r: Request) => {
        const m = /^\/api\/v1\/streams\/([^/]+)$/.exec(new URL(r.url()).pathname);
        if (m && r.method() === "DELETE")
          deletes.push({ id: m[1] ?? "", auth: r.headers().authorization ?? "" });
      });
      const deleted = page.waitForResponse(
        (r) => r.request().method() === "DELETE" && r.url().includes("/api/v1/streams/"),
      );
      const text = words("s", 300);
      const question = "Count slowly until I stop you";
      rig.upstream().script(question, { text, chunk: 8, delayMs: 50 });
      await ask(page, question);
      await shown(page, 60);
      const streamId = (await lastTurn(page).getAttribute("data-stream-id")) ?? "";
      await page.getByRole("button", { name: "Stop" }).click();
      await waitForState(page, ["stopped"], 5_000);
      expect((await deleted).status()).toBe(204);
      expect(deletes).toEqual([{ id: streamId, auth: expect.stringMatching(/^Bearer \S+$/) }]);

      const partial = (await storedAnswer(page)).answer;
      expect(partial.length).toBeGreaterThan(0);
      expect(text.startsWith(partial)).toBe(true);
      expect(await lastTurn(page).locator(".badge").textContent()).toBe("Stopped");

      // The server's own record of the stream ends with done, finish_reason stopped, well before
      // the upstream's text was through.
      const events = await replay(page, streamId);
      const [last, data] = events.at(-1) ?? ["", {}];
      expect(last).toBe("done");
      expect(data.finish_reason).toBe("stopped");
      const streamed = events
        .filter(([e]) => e === "message_chunk")
        .map(([, d]) => String(d.content))
        .join("");
      expect(streamed.length).toBeLessThan(text.length);
      await expect
        .poll(
          () =>
            rig
              .server()
              .logLines()
              .find((l) => l.event === "stream_end" && l.stream_id === streamId)?.finish_reason,
          { timeout: 5_000, interval: 100 },
        )
        .toBe("stopped");
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  }, 45_000);

  it("Stop right after Send, before the first token: the server stops the stream at once, or it never runs and spends nothing", async () => {
    const { page, problems, close } = await rig.open();
    try {
      const bodies = streamBodies(page);
      const deletes: string[] = [];
      page.on("request", (r: Request) => {
        const m = /^\/api\/v1\/streams\/([^/]+)$/.exec(new URL(r.url()).pathname);
        if (m && r.method() === "DELETE") deletes.push(m[1] ?? "");
      });
      const deleted = page.waitForResponse(
        (r) => r.request().method() === "DELETE" && r.url().includes("/api/v1/streams/"),
      );
      const question = "Think for a long time before you answer";
      rig.upstream().script(question, { text: words("t", 50), firstDelayMs: 5_000 });
      const before = await quotaLeft(page);
      const upstreamBefore = rig.upstream().requests.length;
      await ask(page, question);
      await page.getByRole("button", { name: "Stop" }).click();
      await waitForState(page, ["stopped"], 5_000);
      // 204: it reached the running stream; 404: it came first, and the start will not run.
      expect([204, 404]).toContain((await deleted).status());

      // The page chose the stream's id and sent it with the question: Stop named it at once.
      expect(bodies).toHaveLength(1);
      const streamId = (bodies[0] as { stream_id?: string }).stream_id ?? "";
      expect(streamId).toMatch(/^[0-9a-f-]{36}$/);
      expect(deletes).toEqual([streamId]);
      expect(await lastTurn(page).getAttribute("data-stream-id")).toBe(streamId);
      expect((await storedAnswer(page)).answer).toBe("");

      const streamEnd = () =>
        rig
          .server()
          .logLines()
          .find((l) => l.event === "stream_end" && l.stream_id === streamId);
      const askedUpstream = () =>
        rig
          .upstream()
          .requests.slice(upstreamBefore)
          .some((r) => r.messages.at(-1)?.content === question);
      // The server has settled this stream either way within a moment (no orphan grace).
      await expect
        .poll(
          () =>
            rig
              .server()
              .logLines()
              .some(
                (l) =>
                  l.event === "request" &&
                  l.stream_id === streamId &&
                  (l.status === 499 || l.finish_reason === "stopped"),
              ) || streamEnd() !== undefined,
          { timeout: 5_000, interval: 100 },
        )
        .toBe(true);
      if (askedUpstream() || streamEnd()) {
        // The start came first: stopped at once, before the first token (5 s in), not after
        // the orphan grace (30 s). Nothing reached the page. (Its record holds what the model
        // may have billed: the gateway's upper bound, as for any stream stopped unreported.)
        await expect.poll(() => streamEnd()?.finish_reason, { timeout: 5_000 }).toBe("stopped");
        expect(Number(streamEnd()?.duration_ms)).toBeLessThan(5_000);
      } else {
        // The Stop came first: the stream never ran, and its admission was undone.
        await sleep(500);
        expect(askedUpstream()).toBe(false);
        expect(streamEnd()).toBeUndefined();
        expect(await quotaLeft(page)).toBe(before);
      }
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  }, 45_000);

  it("a remembered answer the server no longer has ends with a clear notice, once", async () => {
    const turn = {
      user: "An old question",
      answer: "Half an answer",
      reasoning: "",
      state: "streaming",
      note: "",
      badge: "",
      metrics: [],
      streamId: "no-such-stream",
      lastEventId: 4,
      errorCode: "",
      leftOut: 0,
    };
    const { page, problems, close } = await rig.open({
      statuses: [404],
      storage: {
        "magicBox.chats": JSON.stringify({
          v: 1,
          current: "old",
          chats: [{ id: "old", title: "An old question", renamed: false, updated: 1 }],
        }),
        "magicBox.chat.old": JSON.stringify({ v: 1, turns: [turn] }),
      },
    });
    try {
      await waitForState(page, ["incomplete"]);
      expect(await lastTurn(page).locator(".note").textContent()).toBe(
        "The connection dropped, and the server no longer has the rest of this answer.",
      );
      expect(await lastTurn(page).locator(".answer-text").textContent()).toBe("Half an answer");
      expect((await storedAnswer(page)).state).toBe("incomplete");
      // Asked once, from the remembered event; a reload does not ask again.
      const asked = resumes(page);
      await page.reload();
      await page.locator('#quota[data-loaded="true"]').waitFor();
      expect(await lastTurn(page).getAttribute("data-state")).toBe("incomplete");
      expect(asked).toEqual([]);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });
});
