/** @module Pure parts of the limit stage: address keys, window strings, sliding-window arithmetic. */
import { describe, expect, it } from "vitest";
import { parseWindow } from "../../src/config";
import { ipKey } from "../../src/limits/client-ip";
import { rateLimitHeaders } from "../../src/limits/refusals";
import { decide, peek } from "../../src/limits/sliding-window";
import { describeError } from "../../src/observe/log";

describe("ipKey", () => {
  it("keeps an IPv4 address as it is", () => {
    expect(ipKey("203.0.113.9")).toBe("203.0.113.9");
  });
  it("unwraps IPv4-mapped IPv6 addresses", () => {
    expect(ipKey("::ffff:203.0.113.9")).toBe("203.0.113.9");
    expect(ipKey("::FFFF:cb00:7109")).toBe("203.0.113.9");
  });
  it("keys IPv6 by its /64, whatever the spelling", () => {
    const keys = new Set(
      [
        "2001:db8:1:2::1",
        "2001:0db8:0001:0002:0000:0000:0000:0001",
        "2001:DB8:1:2:ffff::9",
        "2001:db8:1:2::",
      ].map(ipKey),
    );
    expect([...keys]).toEqual(["2001:db8:1:2::/64"]);
    expect(ipKey("2001:db8:1:3::1")).not.toBe(ipKey("2001:db8:1:2::1"));
  });
  it("refuses what is not an address", () => {
    for (const bad of [
      "",
      " ",
      "localhost",
      "1.2.3",
      "0x7f.1",
      "1.2.3.4, 5.6.7.8",
      "256.1.1.1",
      "x".repeat(100),
      null,
      undefined,
    ]) {
      expect(ipKey(bad)).toBeNull();
    }
  });
});

describe("parseWindow", () => {
  it("reads limit and window", () => {
    expect(parseWindow("30/30s")).toEqual({ limit: 30, windowMs: 30_000 });
    expect(parseWindow("60/1m")).toEqual({ limit: 60, windowMs: 60_000 });
    expect(parseWindow("20/h")).toEqual({ limit: 20, windowMs: 3_600_000 });
  });
  it("refuses malformed or degenerate windows", () => {
    for (const bad of ["30", "30/", "x/30s", "0/30s", "30/0s", "30/500ms", "-1/30s", "30/30y"]) {
      expect(() => parseWindow(bad)).toThrow();
    }
  });
});

describe("sliding window arithmetic", () => {
  const spec = { limit: 10, windowMs: 1000 };
  it("refuses the hit that would reach the limit", () => {
    expect(decide(9, 0, 5_000, spec).result).toMatchObject({ success: true, remaining: 0 });
    expect(decide(10, 0, 5_000, spec).result).toMatchObject({ success: false, remaining: 0 });
  });
  it("weights the previous bucket by how much of it still overlaps", () => {
    // 25% into the bucket: 75% of the previous 8 hits still count (6).
    expect(peek(0, 8, 5_250, spec).remaining).toBe(4);
    expect(decide(3, 8, 5_250, spec).result.success).toBe(true);
    expect(decide(4, 8, 5_250, spec).result.success).toBe(false);
  });
  it("refunds with a negative rate even when full", () => {
    expect(decide(10, 0, 5_000, spec, -1)).toMatchObject({ current: 9, result: { success: true } });
  });
  it("resets at the end of the current bucket", () => {
    expect(decide(0, 0, 5_400, spec).result.reset).toBe(6_000);
  });
});

describe("rateLimitHeaders", () => {
  it("describes the window with the least room", () => {
    const now = 1_000_000;
    const h = rateLimitHeaders(
      [
        { success: true, limit: 30, remaining: 12, reset: now + 9_500 },
        { success: true, limit: 60, remaining: 3, reset: now + 20_100 },
      ],
      now,
    );
    expect(h).toEqual({
      "RateLimit-Limit": "60",
      "RateLimit-Remaining": "3",
      "RateLimit-Reset": "21",
    });
  });
});

describe("describeError", () => {
  it("cuts the command an Upstash error quotes, which holds user ids and addresses", () => {
    const e = new Error(
      'ERR something, command was: [["evalsha","x",2,"mb:rl:user:anonymous:anon_1","ip:203.0.113.9"]]',
    );
    expect(describeError(e)).toBe("Error: ERR something");
  });
});
