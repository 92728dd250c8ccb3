/** @module The LimitStore adapter over the LimitsStore Durable Object: one object per user and per IP. */
import type { LedgerRecord } from "../ledger/record";
import type { LimitsStore } from "./durable-object";
import type { Admission, AdmissionRequest, LimitSpecs, LimitStore, UsageSnapshot } from "./store";

/** Builds the Durable Object store; `ns` is the LIMITS binding, object names start with `prefix`. */
export function durableStore(
  ns: DurableObjectNamespace<LimitsStore>,
  specs: LimitSpecs,
  prefix = "mb",
): LimitStore {
  const user = (key: string) => ns.get(ns.idFromName(`${prefix}:user:${key}`));
  const ip = (key: string) => ns.get(ns.idFromName(`${prefix}:ip:${key}`));
  const metrics = () => ns.get(ns.idFromName(`${prefix}:metrics`));
  const cancelIn = {
    user: (r: AdmissionRequest) =>
      user(r.userKey).cancelAdmission(
        r.id,
        "rate:user",
        specs.user,
        r.anonymous ? specs.anonHourly : null,
        r.at,
      ),
    ip: (r: AdmissionRequest) => ip(r.ipKey).cancelAdmission(r.id, "rate:ip", specs.ip, null, r.at),
  };
  return {
    kind: "durable_object",
    async admit(r): Promise<Admission> {
      // The user's window and quota live in one object, the IP's in another: both are asked at
      // once (one round trip in time), and a refusal by one is undone in the other before the
      // answer, so a refused request counts nothing.
      const quota = r.anonymous ? { hourly: specs.anonHourly, total: specs.anonTotal } : null;
      const [u, i] = await Promise.all([
        user(r.userKey).admit(r.id, "rate:user", specs.user, quota, r.at),
        ip(r.ipKey).admit(r.id, "rate:ip", specs.ip, null, r.at),
      ]);
      if ("cancelled" in u || "cancelled" in i) {
        throw new Error("the admission was cancelled or already made");
      }
      if (!u.window.success && i.window.success) await cancelIn.ip(r);
      if (u.window.success && !i.window.success) {
        await cancelIn.user(r);
        return { user: u.window, ip: i.window, quota: null };
      }
      return { user: u.window, ip: i.window, quota: u.quota };
    },
    async cancelAdmission(r) {
      await Promise.all([cancelIn.user(r), cancelIn.ip(r)]);
    },
    refundQuota: (userKey, spentAt) => user(userKey).refundQuota(specs.anonHourly, spentAt),
    hitSessionMint: (ipKey) => ip(ipKey).hit("mint", specs.sessionsPerIp),
    hitUsageRead: (userKey) => user(userKey).hit("usage", specs.usageReads),
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
