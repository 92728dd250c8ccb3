/**
 * @module Browser tests of how the Magic Box page answers: a prompt streamed token by token with
 * its metrics and the demo notice, Stop (kept partial text, the stream stopped on the server),
 * and a plain sentence for each way an answer can fail (error event, dropped connection, 422,
 * 502, 503 with Retry-After). Setup: ./magic-setup.ts.
 */
import type { Page, Route } from "playwright-core";
import { describe, expect, it } from "vitest";
import { ask, waitForState } from "./browser";
import {
  demoAnswer,
  HOURLY_QUOTA,
  lastTurn,
  openMagic,
  screenshot,
  server,
  useMagicServer,
} from "./magic-setup";

useMagicServer();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function metric(page: Page, key: string): Promise<string> {
  return (await lastTurn(page).locator(`[data-metric="${key}"]`).textContent()) ?? "";
}

describe("Magic Box page", () => {
  it("a. streams a prompt sent with Enter token by token, then shows metrics and the demo notice", async () => {
    const { page, problems, close } = await openMagic();
    try {
      expect(await page.locator("#quota").textContent()).toContain(
        `${HOURLY_QUOTA} of ${HOURLY_QUOTA} streams left this hour`,
      );
      // A first visit, nothing answered yet: the server says the demo answers, so the page does.
      await page.locator("#demo-notice").waitFor({ state: "visible" });
      const box = page.locator("#prompt");
      await box.click();
      await box.pressSequentially("What does the gateway do?");
      await box.press("Shift+Enter");
      await box.pressSequentially("Answer in one line.");
      const message = "What does the gateway do?\nAnswer in one line.";
      expect(await box.inputValue()).toBe(message);
      expect(await page.locator(".turn").count()).toBe(0);

      // Record, inside the page, every length the answer text passes through.
      await page.evaluate(() => {
        const w = window as unknown as { lengths: number[] };
        w.lengths = [];
        new MutationObserver(() => {
          const text = document.querySelector(".turn:last-of-type .answer-text")?.textContent;
          if (typeof text === "string") w.lengths.push(text.length);
        }).observe(document.getElementById("conversation") as HTMLElement, {
          subtree: true,
          childList: true,
          characterData: true,
        });
      });
      await box.press("Enter");
      await waitForState(page, ["streaming", "done"]);
      expect(await lastTurn(page).locator(".you-text").textContent()).toBe(message);
      await waitForState(page, ["done"]);

      const full = demoAnswer(message).join("");
      expect(await lastTurn(page).locator(".answer-text").textContent()).toBe(full);
      const lengths = await page.evaluate(
        () => (window as unknown as { lengths: number[] }).lengths,
      );
      const intermediate = new Set(lengths.filter((n) => n > 0 && n < full.length));
      expect(intermediate.size, `lengths seen: ${lengths.join(",")}`).toBeGreaterThanOrEqual(2);

      expect(await metric(page, "tokens")).toMatch(/^\d+ in · \d+ out$/);
      expect(await metric(page, "cost")).toMatch(/^\$0\.\d{6}$/);
      expect(await metric(page, "ttft")).toMatch(/^\d+ ms$|^\d+\.\d s$/);
      expect(await metric(page, "duration")).toMatch(/^\d+ ms$|^\d+\.\d s$/);
      expect(await page.locator("#demo-notice").isVisible()).toBe(true);
      expect(await page.locator("#quota").textContent()).toContain(
        `${HOURLY_QUOTA - 1} of ${HOURLY_QUOTA} streams left this hour`,
      );
      expect(await page.locator("#status").textContent()).toMatch(/^Answer complete/);
      expect(await box.inputValue()).toBe("");
      expect(await page.locator("#send").isEnabled()).toBe(true);
      expect(await page.locator("#stop").isHidden()).toBe(true);
      expect(await page.evaluate(() => document.activeElement?.id)).toBe("prompt");
      await screenshot(page, "a-finished-answer.png");
      // Once the demo has answered in this browser, its banner is there from the start.
      await page.reload();
      await page.locator('#quota[data-loaded="true"]').waitFor();
      expect(await page.locator("#demo-notice").isVisible()).toBe(true);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("b. Stop keeps the partial answer, marks it stopped, and stops the stream on the server (finish_reason stopped)", async () => {
    const { page, problems, close } = await openMagic();
    try {
      const headerIds: string[] = [];
      page.on("response", (r) => {
        const id = r.headers()["x-stream-id"];
        if (new URL(r.url()).pathname === "/api/v1/stream" && id) headerIds.push(id);
      });
      const message = "Tell me how stopping a stream works";
      await ask(page, message);
      await page.waitForFunction(
        () =>
          (document.querySelector(".turn:last-of-type .answer-text")?.textContent?.length ?? 0) >=
          20,
        undefined,
        { timeout: 10_000 },
      );
      expect(await page.locator("#send").isDisabled()).toBe(true);
      await page.locator("#stop").click();
      await waitForState(page, ["stopped"], 5_000);

      const full = demoAnswer(message).join("");
      const partial = (await lastTurn(page).locator(".answer-text").textContent()) ?? "";
      expect(partial.length).toBeGreaterThan(0);
      expect(partial.length).toBeLessThan(full.length);
      expect(full.startsWith(partial)).toBe(true);
      await sleep(300);
      expect(await lastTurn(page).locator(".answer-text").textContent()).toBe(partial);
      expect(await lastTurn(page).locator(".badge").textContent()).toBe("Stopped");
      expect(await lastTurn(page).locator(".note").textContent()).toMatch(/stopped/i);
      expect(await page.locator("#send").isEnabled()).toBe(true);
      expect(await page.locator("#stop").isHidden()).toBe(true);

      const streamId = await lastTurn(page).getAttribute("data-stream-id");
      expect(streamId).toBeTruthy();
      expect(headerIds).toContain(streamId);
      // Stop reached the server (DELETE /api/v1/streams/{id}), not only the page's own read: the
      // worker's stream_end line names stopped, not the client_abort of a reader that left.
      await expect
        .poll(
          () =>
            server?.logLines().find((l) => l.event === "stream_end" && l.stream_id === streamId),
          { timeout: 5_000, interval: 100 },
        )
        .toBeTruthy();
      const line = server
        ?.logLines()
        .find((l) => l.event === "stream_end" && l.stream_id === streamId);
      expect(line?.finish_reason).toBe("stopped");
      expect(line?.provider).toBe("demo");
      await screenshot(page, "b-stopped.png");
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it("e2. an error event mid-stream, a dropped connection, 422, 502 and 503 each get a plain sentence; partial text is kept and marked", async () => {
    const { page, problems, close } = await openMagic({ statuses: [422, 502, 503] });
    try {
      // Canned answers of /api/v1/stream, served in order by the browser itself.
      const sse = { "Content-Type": "text/event-stream; charset=utf-8" };
      const json = { "Content-Type": "application/json; charset=utf-8" };
      const canned: Parameters<Route["fulfill"]>[0][] = [
        {
          status: 200,
          headers: { ...sse, "X-Stream-Id": "canned-error" },
          // CRLF, CR and LF line ends, a comment and a data field split over two lines.
          body:
            ": comment\r\n\r\n" +
            'id: 1\r\nevent: message_chunk\r\ndata: {"content":"Partial answer ","output_tokens":3,\r\ndata: "cost_usd":0.000002}\r\n\r\n' +
            'id: 2\revent: message_chunk\rdata: {"content":"so far","output_tokens":5,"cost_usd":0.000004}\r\r' +
            'id: 3\nevent: error\ndata: {"error_code":"upstream_error","detail":"the model provider failed mid-stream","retry_after":null}\n\n',
        },
        {
          status: 200,
          headers: { ...sse, "X-Stream-Id": "canned-drop" },
          // The stream ends without a terminal event; the unterminated `done` must not count.
          body:
            'event: message_chunk\ndata: {"content":"Half an ans","output_tokens":4,"cost_usd":0.000003}\n\n' +
            'event: done\ndata: {"stream_id":"canned-drop","provider":"demo"}',
        },
        {
          status: 422,
          headers: json,
          body: JSON.stringify({
            error_code: "invalid_input",
            detail: "message: must not be only whitespace",
            retry_after: null,
            fields: ["message"],
          }),
        },
        {
          status: 502,
          headers: sse,
          body: 'id: 1\nevent: error\ndata: {"error_code":"upstream_error","detail":"the model provider failed","retry_after":null}\n\n',
        },
        {
          status: 503,
          headers: { ...json, "Retry-After": "2" },
          body: JSON.stringify({
            error_code: "upstream_busy",
            detail: "the model provider is busy",
            retry_after: 2,
          }),
        },
      ];
      let served = 0;
      await page.route("**/api/v1/stream", (route) => route.fulfill(canned[served++]));

      await ask(page, "First: an error mid-stream");
      await waitForState(page, ["incomplete"]);
      let turn = lastTurn(page);
      expect(await turn.locator(".answer-text").textContent()).toBe("Partial answer so far");
      expect(await turn.locator(".badge").textContent()).toBe("Incomplete");
      expect(await turn.locator(".note").textContent()).toBe(
        "The answer broke off because of an error on the server (the model provider failed mid-stream).",
      );
      expect(await metric(page, "cost")).toBe("$0.000004");

      await ask(page, "Second: a dropped connection");
      await waitForState(page, ["incomplete"]);
      turn = lastTurn(page);
      expect(await turn.locator(".answer-text").textContent()).toBe("Half an ans");
      expect(await turn.locator(".note").textContent()).toBe(
        "The connection dropped before the answer finished.",
      );
      // No answer came from the demo here: the banner shows only if the server says it answers.
      const demo = await page.evaluate(
        async () => ((await (await fetch("/api/v1/models")).json()) as { demo?: boolean }).demo,
      );
      expect(await page.locator("#demo-notice").isHidden()).toBe(demo !== true);

      await ask(page, "Third: a 422");
      await waitForState(page, ["failed"]);
      expect(await lastTurn(page).locator(".note").textContent()).toBe(
        "The message was not accepted. Message: must not be only whitespace.",
      );
      await ask(page, "Fourth: a 502");
      await waitForState(page, ["failed"]);
      expect(await lastTurn(page).locator(".note").textContent()).toBe(
        "The model provider failed to answer. Please try again.",
      );
      await screenshot(page, "e-errors.png");

      await ask(page, "Fifth: a 503 with Retry-After");
      await waitForState(page, ["failed"]);
      expect(await lastTurn(page).locator(".note").textContent()).toBe(
        "The model provider is busy. Please try again shortly.",
      );
      expect(await page.locator("#countdown").textContent()).toMatch(
        /^Send is available again in [12] s\.$/,
      );
      expect(await page.locator("#send").isDisabled()).toBe(true);
      await page.waitForFunction(
        () => !(document.getElementById("send") as HTMLButtonElement).disabled,
        undefined,
        { timeout: 4_000 },
      );
      expect(await page.locator("#notice").isHidden()).toBe(true);
      expect(served).toBe(canned.length);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });
});
