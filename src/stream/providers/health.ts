/**
 * @module What one isolate remembers of its upstreams: a breaker per route target (3 failures in
 * a row: skipped for 30 s) and a key ring per provider (each request takes the next key; a key
 * answered 401, 403 or 429 is skipped for a while). Time comes in as a clock, so tests pin it.
 */

/** Failures in a row that open a target's breaker. */
export const BREAKER_FAILURES = 3;
/** How long an open breaker skips its target. */
export const BREAKER_OPEN_MS = 30_000;
/** How long a refused or rate-limited key is skipped. */
export const KEY_COOLDOWN_MS = 60_000;

interface TargetState {
  failures: number;
  openUntil: number;
}

/** Per-isolate breakers, one per target key (`provider` + model name). */
export class Breakers {
  private readonly states = new Map<string, TargetState>();
  constructor(private readonly now: () => number = Date.now) {}

  /** True while the target's breaker is open. */
  skips(target: string): boolean {
    const s = this.states.get(target);
    return s !== undefined && s.failures >= BREAKER_FAILURES && this.now() < s.openUntil;
  }

  /** A failure the target is to blame for (not a bad request, not a client that left). */
  failed(target: string): void {
    const s = this.states.get(target) ?? { failures: 0, openUntil: 0 };
    s.failures++;
    // The third in a row opens it; a failure of the trial after the pause opens it again.
    if (s.failures >= BREAKER_FAILURES) s.openUntil = this.now() + BREAKER_OPEN_MS;
    this.states.set(target, s);
  }

  succeeded(target: string): void {
    this.states.delete(target);
  }
}

/** A provider's keys in rotation, skipping those refused lately. */
export class KeyRing {
  private next = 0;
  private readonly coolUntil: number[];
  constructor(
    private readonly keys: readonly string[],
    private readonly now: () => number = Date.now,
  ) {
    this.coolUntil = keys.map(() => 0);
  }

  /** The next usable key and its index; when every key is cooling, the next in turn anyway. */
  take(): { key: string | undefined; index: number } {
    const n = this.keys.length;
    if (n === 0) return { key: undefined, index: -1 };
    const at = this.now();
    for (let i = 0; i < n; i++) {
      const index = (this.next + i) % n;
      if ((this.coolUntil[index] as number) <= at) {
        this.next = (index + 1) % n;
        return { key: this.keys[index], index };
      }
    }
    const index = this.next;
    this.next = (index + 1) % n;
    return { key: this.keys[index], index };
  }

  /** The key at `index` was refused (401/403) or rate limited (429). */
  refused(index: number): void {
    if (index >= 0) this.coolUntil[index] = this.now() + KEY_COOLDOWN_MS;
  }
}
