/**
 * @module The protocol between the Upstash store and its Lua scripts (src/limits/lua/): one
 * table of names for the keys, the arguments, the answer's fields and the refusal codes, from
 * which both sides read. The TypeScript builds KEYS and ARGV by name; each script is prefixed
 * with the same names as Lua tables (`KEYS[K.mark]`, `ARGV[A.now]`), so no side counts
 * positions by hand.
 */
import admitLua from "./lua/admit.lua";
import budgetStateLua from "./lua/budget-state.lua";
import cancelAdmissionLua from "./lua/cancel-admission.lua";
import readBudgetsLua from "./lua/read-budgets.lua";
import recordMetricsLua from "./lua/record-metrics.lua";
import refundQuotaLua from "./lua/refund-quota.lua";
import uncountLua from "./lua/uncount.lua";
import writeLedgerLua from "./lua/write-ledger.lua";

/** Why an admission was refused (the answer's `refused`); `none` admits. */
export const REFUSED = {
  none: 0,
  user: 1,
  ip: 2,
  hourly: 3,
  total: 4,
  /** The admission was cancelled (or made) before it reached the store: it counts nothing. */
  cancelled: 5,
  budget: 6,
  /** The IPv6 /48's window. */
  ipWide: 7,
} as const;
export type Refusal = (typeof REFUSED)[keyof typeof REFUSED];

/**
 * The admission's keys, in order: the user's and the IP's windows (current and previous
 * bucket), the admission's mark, the /48's window (for IPv4 a pair nothing touches), then for
 * anonymous callers the hourly quota's window and the total quota; the budgets' keys (a hash
 * and a sorted set each) follow.
 */
export const ADMIT_WINDOW_KEYS = [
  "userCurrent",
  "userPrevious",
  "ipCurrent",
  "ipPrevious",
  "mark",
  "wideCurrent",
  "widePrevious",
] as const;
export const ADMIT_QUOTA_KEYS = ["hourlyCurrent", "hourlyPrevious", "total"] as const;
export const ADMIT_KEYS = [...ADMIT_WINDOW_KEYS, ...ADMIT_QUOTA_KEYS] as const;

/** The admission's arguments, in order; each budget's limit and TTL follow from `budgets` on. */
export const ADMIT_ARGS = [
  "now",
  "userLimit",
  "userWindow",
  "ipLimit",
  "ipWindow",
  "markTtl",
  "anonymous",
  "hourlyLimit",
  "hourlyWindow",
  "totalQuota",
  "totalQuotaTtl",
  "capMicroUsd",
  "inputMicroUsd",
  "outputPicoUsd",
  "maxTokensCeiling",
  "holdTtl",
  "admissionId",
  "wideLimit",
] as const;

/** The admission's answer: its fields in order (a refused window says its two counts). */
export const ADMIT_ANSWER = [
  "refused",
  "userLeft",
  "ipLeft",
  "hourlyLeft",
  "totalLeft",
  "maxTokens",
  "hold",
  "refusedBy",
  "settledOut",
  "countCurrent",
  "countPrevious",
] as const;

/** A cancellation's arguments (its keys are the admission's). */
export const CANCEL_ARGS = ["markTtl", "anonymous", "admissionId", "wide"] as const;

/** A ledger write's keys, in order; each budget's hash and sorted set follow from `budgets` on. */
export const LEDGER_KEYS = ["record", "spendTotal", "spendStreams", "spendDay"] as const;

/** A ledger write's arguments. */
export const LEDGER_ARGS = ["record", "retention", "cost", "member", "budgetTtl"] as const;

type Names = readonly string[];

/** A Lua table from 1-based positions: `{a = 1, b = 2}`, plus extra fields. */
function luaTable(name: string, names: Names, extra: Record<string, number> = {}): string {
  const fields = names.map((n, i) => `${n} = ${i + 1}`);
  for (const [k, v] of Object.entries(extra)) fields.push(`${k} = ${v}`);
  return `local ${name} = {${fields.join(", ")}}\n`;
}

const refusedTable = `local REFUSED = {${Object.entries(REFUSED)
  .map(([k, v]) => `${k} = ${v}`)
  .join(", ")}}\n`;
const keysTable = luaTable("K", ADMIT_KEYS);

/** A script as the store sends it: EVALSHA, and EVAL only when redis does not know it yet. */
export interface LoadedScript<T> {
  exec(keys: string[], args: string[]): Promise<T>;
}

/** The scripts, each with the names it reads prepended. */
export const SCRIPTS = {
  admit:
    refusedTable +
    keysTable +
    luaTable("A", ADMIT_ARGS, { budgets: ADMIT_ARGS.length + 1 }) +
    luaTable("R", ADMIT_ANSWER, { size: ADMIT_ANSWER.length }) +
    budgetStateLua +
    admitLua,
  cancelAdmission: keysTable + luaTable("C", CANCEL_ARGS) + uncountLua + cancelAdmissionLua,
  refundQuota: uncountLua + refundQuotaLua,
  writeLedger:
    luaTable("L", LEDGER_KEYS, { budgets: LEDGER_KEYS.length + 1 }) +
    luaTable("W", LEDGER_ARGS) +
    writeLedgerLua,
  readBudgets: budgetStateLua + readBudgetsLua,
  recordMetrics: recordMetricsLua,
} as const;

/** The values of `names`, in their order, as the strings ARGV and KEYS carry. */
export function byName<N extends Names>(
  names: N,
  values: { [K in N[number]]: string | number },
): string[] {
  return names.map((n) => String(values[n as N[number]]));
}

/** An answer's fields by name (missing ones are 0, as in a cancelled admission's short answer). */
export function fieldsOf<N extends Names>(
  names: N,
  answer: readonly unknown[],
): { [K in N[number]]: number } {
  const out = {} as Record<string, number>;
  names.forEach((n, i) => {
    out[n] = Number(answer[i] ?? 0);
  });
  return out as { [K in N[number]]: number };
}
