/**
 * @module The floor's Durable Object: one trivial method, so the floor can pay exactly one
 * Durable Object round trip (no storage, no output gate) and the Durable Object store's own work
 * is what the gateway adds over that.
 */
import { DurableObject } from "cloudflare:workers";

/** One object per name; `ping` answers at once. */
export class FloorTrip extends DurableObject {
  private calls = 0;

  /** Counts the call in memory and returns the count: the least a method can do. */
  ping(): number {
    return ++this.calls;
  }
}
