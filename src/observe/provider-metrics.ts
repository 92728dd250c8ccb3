/**
 * @module Per-provider counters of routes: attempts, fallbacks (a failed attempt that handed the
 * request to the next target) and breaker skips, by `PROVIDERS` name. Names only, never keys.
 */
import type { LogFields } from "./log";
import type { Counters } from "./metrics";

const KINDS = {
  upstream_attempts: "provider_attempts:",
  upstream_fallbacks: "provider_fallbacks:",
  upstream_breaker_skips: "provider_breaker_skips:",
} as const;

/** The counters of one request's route, from the fields the route annotated. */
export function providerCounters(fields: LogFields): Counters {
  const c: Counters = {};
  for (const [field, prefix] of Object.entries(KINDS)) {
    const names = fields[field];
    if (typeof names !== "string" || !names) continue;
    for (const name of names.split(",")) c[prefix + name] = (c[prefix + name] ?? 0) + 1;
  }
  return c;
}

export interface ProviderView {
  attempts: number;
  fallbacks: number;
  breaker_skips: number;
}

/** One window's counters per provider, for the JSON view. */
export function providerSummary(c: Counters): Record<string, ProviderView> {
  const out: Record<string, ProviderView> = {};
  const at = (name: string) => {
    out[name] ??= { attempts: 0, fallbacks: 0, breaker_skips: 0 };
    return out[name];
  };
  for (const [key, n] of Object.entries(c)) {
    if (!n) continue;
    if (key.startsWith(KINDS.upstream_attempts)) {
      at(key.slice(KINDS.upstream_attempts.length)).attempts += n;
    } else if (key.startsWith(KINDS.upstream_fallbacks)) {
      at(key.slice(KINDS.upstream_fallbacks.length)).fallbacks += n;
    } else if (key.startsWith(KINDS.upstream_breaker_skips)) {
      at(key.slice(KINDS.upstream_breaker_skips.length)).breaker_skips += n;
    }
  }
  return out;
}

/** Prometheus families for the windows: each family's HELP, TYPE and samples together. */
export function providerPrometheus(windows: Record<string, Counters>): string {
  const lines: string[] = [];
  const families = [
    ["magicbox_upstream_attempts", "attempts", "Route attempts in the window, by provider"],
    ["magicbox_upstream_fallbacks", "fallbacks", "Failed attempts handed to the next target"],
    ["magicbox_upstream_breaker_skips", "breaker_skips", "Targets skipped by an open breaker"],
  ] as const;
  for (const [family, field, help] of families) {
    lines.push(`# HELP ${family} ${help}`, `# TYPE ${family} gauge`);
    for (const [w, c] of Object.entries(windows)) {
      for (const [provider, view] of Object.entries(providerSummary(c))) {
        lines.push(`${family}{window="${w}",provider="${provider}"} ${view[field]}`);
      }
    }
  }
  return `${lines.join("\n")}\n`;
}
