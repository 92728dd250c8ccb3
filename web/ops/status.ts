/**
 * @module The status line and what a screen reader hears of it. The line shows the time of
 * every refresh; the live region speaks only news (the board first shown, a refresh someone
 * asked for, a problem, its end), not "Updated …" every 15 s.
 */

/** The status of the board over `line` (shown) and `live` (a polite live region, read out). */
export function createStatus(line: HTMLElement, live: HTMLElement) {
  let heard = "";
  let failing = false;
  const speak = (text: string) => {
    // The same words again are not news (and a repeated write would be read again).
    if (text === heard) return;
    heard = text;
    live.textContent = text;
  };
  return {
    /** A refresh drew everything; `asked`: someone signed in or pressed Refresh. */
    updated(store: string, asked: boolean): void {
      const time = new Date().toLocaleTimeString();
      line.textContent = `Updated ${time} · store: ${store}`;
      line.classList.remove("bad");
      if (asked || failing) speak(`The board is up to date (${time}).`);
      failing = false;
    },
    /** A refresh failed in part or whole: said once, until it changes or ends. */
    failed(problems: string[]): void {
      const text = problems.join("; ");
      line.textContent = text;
      line.classList.add("bad");
      failing = true;
      speak(text);
    },
  };
}
