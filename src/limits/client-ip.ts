/** @module The client's address as a limit key: CF-Connecting-IP only, IPv6 per /64, mapped IPv4 unwrapped. */
import ipaddr from "ipaddr.js";

/** Used in development when no CF-Connecting-IP arrives (wrangler dev, tests). */
export const DEV_LOOPBACK = "127.0.0.1";

/**
 * Normalises an address into the key its limits are counted under: IPv4 as dotted quad,
 * `::ffff:a.b.c.d` as `a.b.c.d`, IPv6 as its /64 prefix in canonical form. Returns null
 * for anything that is not an IP address.
 */
export function ipKey(raw: string | undefined | null): string | null {
  const text = raw?.trim();
  if (!text || text.length > 64 || !ipaddr.isValid(text)) return null;
  // Reject shorthand IPv4 forms ("1", "0x7f.1") that ipaddr accepts but no proxy sends.
  if (!text.includes(":") && !ipaddr.IPv4.isValidFourPartDecimal(text)) return null;
  let addr: ipaddr.IPv4 | ipaddr.IPv6 = ipaddr.parse(text);
  if (addr.kind() === "ipv6" && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
    addr = (addr as ipaddr.IPv6).toIPv4Address();
  }
  if (addr.kind() === "ipv4") return addr.toString();
  const parts = (addr as ipaddr.IPv6).toByteArray().slice(0, 8);
  const prefix = ipaddr.fromByteArray([...parts, 0, 0, 0, 0, 0, 0, 0, 0]) as ipaddr.IPv6;
  return `${prefix.toNormalizedString().split(":").slice(0, 4).join(":")}::/64`;
}

/** The /48 an IPv6 /64 key lies in (`2001:db8:1::/48`), counted at a wider limit; null for IPv4. */
export function wideIpKey(key: string): string | null {
  if (!key.endsWith("::/64")) return null;
  return `${key.slice(0, -"::/64".length).split(":").slice(0, 3).join(":")}::/48`;
}
