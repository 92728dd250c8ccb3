/** @module The LimitStore adapter over the LimitsStore Durable Object: one object per user and per IP. */
import type { LedgerRecord } from "../ledger/record";
import type { LimitsStore } from "./durable-object";
import type { Admission, LimitSpecs, LimitStore, UsageSnapshot } from "./store";

/** Builds the Durable Object store; `ns` is the LIMITS binding, object names start with `prefix`. */
export function durableStore(
  ns: DurableObjectNamespace<LimitsStore>,
  specs: LimitSpecs,
  prefix = "mb",
): LimitStore {
  const user = (key: string) => ns.get(ns.idFromName(`${prefix}:user:${key}`));
  const ip = (key: string) => ns.get(ns.idFromName(`${prefix}:ip:${key}`));
  const metrics = () => ns.get(ns.idFromName(`${prefix}:metrics`));
  return {
    kind: "durable_object",
    async admit(userKey, ipKey, now, anonymous): Promise<Admission> {
      // The user's window and quota live in one object, the IP's in another: both are asked at
      // once (one round trip in time), and a refusal by one is undone in the other before the
      // answer, so a refused request counts nothing.
      const quotaSpec = anonymous ? { hourly: specs.anonHourly, total: specs.anonTotal } : null;
      const [u, i] = await Promise.all([
        user(userKey).admitUser(specs.user, quotaSpec, now),
        ip(ipKey).hit("rate:ip", specs.ip, 1, now),
      ]);
      if (!u.user.success && i.success) await ip(ipKey).hit("rate:ip", specs.ip, -1, now);
      if (u.user.success && !i.success) {
        const spent = u.quota?.success ? specs.anonHourly : null;
        await user(userKey).releaseUser(specs.user, spent, now);
        return { user: u.user, ip: i, quota: null };
      }
      return { user: u.user, ip: i, quota: u.quota };
    },
    refundQuota: (userKey, spentAt) => user(userKey).refundQuota(specs.anonHourly, spentAt),
    hitSessionMint: (ipKey) => ip(ipKey).hit("mint", specs.sessionsPerIp),
    async usage(userKey, ipKey, anonymous): Promise<UsageSnapshot> {
      const u = user(userKey);
      const [userWindow, ipWindow, quota, spend] = await Promise.all([
        u.read("rate:user", specs.user),
        ip(ipKey).read("rate:ip", specs.ip),
        anonymous ? u.readQuota(specs.anonHourly, specs.anonTotal) : null,
        u.spend(),
      ]);
      return { user: userWindow, ip: ipWindow, quota, spend };
    },
    writeLedger: (record: LedgerRecord) => user(record.userKey).writeLedger(record),
    // One object holds the metrics: every isolate's counters meet there.
    recordMetrics: (counters, now) => metrics().recordMetrics(counters, now),
    readMetrics: (now) => metrics().readMetrics(now),
  };
}
