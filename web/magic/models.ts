/** @module The model menu: the registry's models this caller may use, the last choice kept. */
import type { ModelInfo } from "./api";

const MODEL_KEY = "magicBox.model";

/** The menu over `menu`; `anonymous()` says whether the caller is anonymous now. */
export function createModelMenu(menu: HTMLSelectElement, anonymous: () => boolean) {
  let registry: { default: string; models: ModelInfo[] } | null = null;
  menu.addEventListener("change", () => {
    try {
      localStorage.setItem(MODEL_KEY, menu.value);
    } catch {}
  });

  function fill(): void {
    const allowed = registry?.models.filter((m) => !anonymous() || m.anonymous) ?? [];
    const wanted = (() => {
      try {
        return localStorage.getItem(MODEL_KEY) ?? "";
      } catch {
        return "";
      }
    })();
    const ids = allowed.map((m) => m.id);
    const chosen = ids.includes(menu.value)
      ? menu.value
      : ids.includes(wanted)
        ? wanted
        : ids.includes(registry?.default ?? "")
          ? (registry?.default ?? "")
          : (ids[0] ?? "");
    menu.replaceChildren();
    for (const m of allowed) {
      const option = new Option(m.id, m.id, false, m.id === chosen);
      option.title = `$${m.input_usd_per_million} in / $${m.output_usd_per_million} out per million tokens`;
      menu.append(option);
    }
    // Without the registry, the server's default model answers.
    if (allowed.length === 0) menu.append(new Option("Default model", "", true, true));
    menu.disabled = allowed.length <= 1;
  }

  return {
    fill,
    /** Takes the registry (GET /api/v1/models) and fills the menu. */
    setRegistry(r: { default: string; models: ModelInfo[] } | null): void {
      registry = r;
      fill();
    },
  };
}
