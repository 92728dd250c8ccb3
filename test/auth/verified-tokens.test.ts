/** @module The per-isolate cache of verified tokens: hit only by the very same token, bounded in time and size. */
import { describe, expect, it } from "vitest";
import { call, testEnv } from "../helpers/app";
import { USAGE } from "../helpers/auth";
import { bearer, supabaseClaims, supabaseHs256 } from "../helpers/tokens";

describe("verified tokens (per isolate)", () => {
  it("are hit only by the very same token: one changed signature character is refused right after", async () => {
    const env = testEnv();
    const token = await supabaseHs256(supabaseClaims());
    expect((await call(USAGE, { headers: bearer(token) }, env)).res.status).toBe(200);
    // A character in the middle of the signature: the last one carries spare bits a base64url
    // decoder may ignore, so changing it does not always change the signature.
    const at = token.length - 10;
    const forged = `${token.slice(0, at)}${token[at] === "A" ? "Q" : "A"}${token.slice(at + 1)}`;
    const refused = await call(USAGE, { headers: bearer(forged) }, env);
    expect(refused.res.status).toBe(401);
    expect((await call(USAGE, { headers: bearer(token) }, env)).res.status).toBe(200);
  });

  it("keep an entry for 60 s at most and never past the token's exp, and at most 1,000, oldest out first", async () => {
    const { VerifiedTokens } = await import("../../src/auth/verified-tokens");
    const { principal } = await import("../../src/auth/principal");
    const t0 = 1_800_000_000_000;
    const memo = new VerifiedTokens(60_000, 3);
    const soon = principal("supabase", "a", false, t0 / 1000 + 10);
    const later = principal("supabase", "b", false, t0 / 1000 + 3600);
    memo.set("soon", soon, t0);
    memo.set("later", later, t0);
    expect(memo.get("soon", t0 + 9_999)).toBe(soon);
    expect(memo.get("soon", t0 + 10_000)).toBeUndefined();
    expect(memo.get("later", t0 + 59_999)).toBe(later);
    expect(memo.get("later", t0 + 60_000)).toBeUndefined();
    // Already expired: never kept.
    memo.set("expired", principal("supabase", "c", false, t0 / 1000 - 1), t0);
    expect(memo.get("expired", t0)).toBeUndefined();
    // Bounded: the oldest entry goes first.
    for (const k of ["k1", "k2", "k3"]) memo.set(k, later, t0);
    memo.set("k4", later, t0);
    expect(memo.size).toBe(3);
    expect(memo.get("k1", t0)).toBeUndefined();
    expect(memo.get("k2", t0)).toBe(later);
    expect(memo.get("k4", t0)).toBe(later);
  });
});
