/**
 * @module Tables too wide for their card scroll sideways in a `.table-scroll` box. A box that
 * scrolls must take keyboard focus and say what it holds (WCAG 2.1.1: Safari does not focus
 * scrollers by itself); one that fits stays out of the tab order, so a wide screen has no
 * extra stops.
 */

function mark(box: HTMLElement): void {
  const scrolls = box.scrollWidth > box.clientWidth + 1;
  if (scrolls) {
    box.tabIndex = 0;
    box.setAttribute("role", "region");
    box.setAttribute("aria-label", box.dataset.label ?? "Table");
  } else {
    box.removeAttribute("tabindex");
    box.removeAttribute("role");
    box.removeAttribute("aria-label");
  }
}

const observer = new ResizeObserver((entries) => {
  for (const e of entries) {
    const box = (e.target as HTMLElement).closest<HTMLElement>(".table-scroll");
    if (box) mark(box);
  }
});
const watched = new WeakSet<Element>();

/**
 * Keeps `box` (a `.table-scroll` whose `data-label` names it) focusable exactly while it
 * scrolls: checked now and whenever the box or its table changes size.
 */
export function watchScroller(box: HTMLElement): void {
  mark(box);
  for (const el of [box, box.firstElementChild]) {
    if (!el || watched.has(el)) continue;
    watched.add(el);
    observer.observe(el);
  }
}
