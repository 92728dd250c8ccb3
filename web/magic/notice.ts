/**
 * @module The limit banner above the message box: which limit refused, in words, and a live
 * countdown of Retry-After; Send stays disabled until it ends.
 */
import { formatWait } from "./explain";

/** The banner over `notice` (with `text` and `countdown` inside it). */
export function createNotice(
  notice: HTMLElement,
  text: HTMLElement,
  countdown: HTMLElement,
  changed: () => void,
  say: (text: string) => void,
) {
  let until = 0; // ms; Send stays disabled until then
  let timer = 0;
  return {
    /** True while a countdown runs. */
    get coolingDown(): boolean {
      return Date.now() < until;
    },
    get shown(): boolean {
      return !notice.hidden;
    },
    hide(): void {
      notice.hidden = true;
    },
    /** Shows `title` and `sentence`, and counts down `seconds` (if any) before Send works again. */
    show(title: string, sentence: string, seconds: number | null): void {
      notice.hidden = false;
      text.replaceChildren();
      if (title) {
        const strong = document.createElement("strong");
        strong.textContent = title;
        text.append(strong, " ");
      }
      text.append(sentence);
      countdown.textContent = "";
      clearInterval(timer);
      if (!seconds) {
        changed();
        return;
      }
      until = Date.now() + seconds * 1000;
      const tick = () => {
        const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
        countdown.textContent = left > 0 ? `Send is available again in ${formatWait(left)}.` : "";
        if (left === 0) {
          clearInterval(timer);
          notice.hidden = true;
          say("You can send again.");
        }
        changed();
      };
      tick();
      timer = window.setInterval(tick, 1000);
    },
  };
}
