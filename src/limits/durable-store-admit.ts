/**
 * @module The Durable Object store's admission across its objects: the user's window, quota
 * and own budget live in one object, the IP's window in another (and an IPv6 /48's in a third),
 * a shard of the shared budgets in one more. All are asked at once (one round trip in time), and
 * a refusal by one is undone in the others before the answer, so a refused request counts
 * nothing (a quota refusal still counts in the rate windows).
 */
import { type BudgetSpec, budgetWindow, decideHold, type HoldDecision } from "./budget";
import type { QuotaSpec } from "./durable-admission";
import type { DurableLayout } from "./durable-layout";
import { tighter } from "./sliding-window";
import type {
  Admission,
  AdmissionRequest,
  BudgetOutcome,
  QuotaResult,
  WindowResult,
} from "./store";

type Held = Extract<HoldDecision, { ok: true }>;

/** What the objects answered one admission (none of them cancelled). */
interface Answers {
  /** The user's object: its window, the quota it spent (or refused), its own budgets' hold. */
  user: { window: WindowResult; quota: QuotaResult | null; budget: HoldDecision | null };
  /** The address's /64, and for IPv6 its /48. */
  narrow: WindowResult;
  wide: WindowResult | null;
  /** The shard that held the shared budgets (or the first asked, when none could). */
  shared: { decision: HoldDecision; shard: number } | null;
}

/** Admits `r`: asks every object at once, undoes what a refusal left counted, answers. */
export async function admit(d: DurableLayout, r: AdmissionRequest): Promise<Admission> {
  const own = d.own(r.anonymous);
  const shared = d.shared(r.anonymous);
  const answers = await askObjects(d, r, own, shared);
  // The address's answer is the tighter of its /64's and (IPv6) its /48's.
  const ip = answers.wide ? tighter(answers.narrow, answers.wide) : answers.narrow;
  await undoUnlessAdmitted(d, r, answers, ip);
  const { user } = answers;
  if (!user.window.success || !ip.success) {
    return { user: user.window, ip, quota: null, budget: null };
  }
  if (user.budget === null) return { user: user.window, ip, quota: user.quota, budget: null };
  const refused =
    refusalOf(own, user.budget, r.at) ??
    (answers.shared ? refusalOf(shared, answers.shared.decision, r.at) : null);
  if (refused) return { user: user.window, ip, quota: user.quota, budget: refused };
  return grantHold(d, r, answers, ip, own.length > 0);
}

/**
 * Asks every object of the admission at once: the windows and the quota decide, the budgets
 * hold. Throws when any object had seen the admission cancelled (releasing the shared hold).
 */
async function askObjects(
  d: DurableLayout,
  r: AdmissionRequest,
  own: BudgetSpec[],
  shared: BudgetSpec[],
): Promise<Answers> {
  const { specs } = d;
  const quota: QuotaSpec | null = r.anonymous
    ? { hourly: specs.anonHourly, total: specs.anonTotal }
    : null;
  const ownHold = {
    entries: own.map((b) => d.entry(b, r.at)),
    price: r.price,
    expiresAt: r.at + specs.holdTtlMs,
  };
  const [user, narrow, wide, held] = await Promise.all([
    d.user(r.userKey).admit(r.id, "rate:user", specs.user, quota, r.at, ownHold),
    d.ip(r.ipKey).admit(r.id, "rate:ip", specs.ip, null, r.at),
    r.wideIpKey ? d.ip(r.wideIpKey).admit(r.id, "rate:ip", specs.ipWide, null, r.at) : null,
    shared.length > 0 ? holdShared(d, r, shared, Math.floor(Math.random() * d.shards)) : null,
  ]);
  if ("cancelled" in user || "cancelled" in narrow || (wide && "cancelled" in wide)) {
    if (held?.decision.ok) await d.shard(held.shard).releaseHold(r.id);
    throw new Error("the admission was cancelled or already made");
  }
  return {
    user,
    narrow: narrow.window,
    wide: (wide as Exclude<typeof wide, { cancelled: true }>)?.window ?? null,
    shared: held,
  };
}

/**
 * Holds against the shared budgets in one shard, `first` (picked at random). Only when that
 * shard cannot pay for one token are the others read (all at once, read only) and the one
 * with the most left is asked, and so on until one holds or none can pay: so a refusal means
 * that no shard could pay for one token, and what the budget leaves unused is less than one
 * token (and the prompt) per shard. Reading before holding never holds twice, even briefly.
 */
async function holdShared(
  d: DurableLayout,
  r: AdmissionRequest,
  list: BudgetSpec[],
  first: number,
) {
  const ask = (i: number) =>
    d
      .shard(i)
      .holdShared(r.id, d.shardEntries(list, r.at, i), r.price, r.at, r.at + d.specs.holdTtlMs);
  const refused = await ask(first);
  if (refused.ok) return { decision: refused, shard: first };
  const untried = new Set(Array.from({ length: d.shards }, (_, k) => k).filter((k) => k !== first));
  while (untried.size > 0) {
    const candidates = [...untried];
    const states = await Promise.all(
      candidates.map((k) => d.shard(k).readBudgets(d.shardEntries(list, r.at, k), r.at)),
    );
    const free = states.map((s) => Math.min(...s.map((b) => b.limit - b.spent - b.held)));
    const best = free.indexOf(Math.max(...free));
    const shard = candidates[best] as number;
    if (!decideHold(r.price, states[best] ?? []).ok) break;
    untried.delete(shard);
    const decision = await ask(shard);
    if (decision.ok) return { decision, shard };
  }
  return { decision: refused, shard: first };
}

/**
 * Unless every object admitted, undoes what the others counted or held, before the answer. A
 * quota refusal still counts in the rate windows; an own-budget refusal was already undone
 * inside the user's object.
 */
async function undoUnlessAdmitted(
  d: DurableLayout,
  r: AdmissionRequest,
  { user, narrow, wide, shared }: Answers,
  ip: WindowResult,
): Promise<void> {
  const sharedOk = shared === null || shared.decision.ok;
  const windowsOk = user.window.success && ip.success;
  if (windowsOk && user.budget?.ok && sharedOk) return;
  const undo: Promise<unknown>[] = [];
  if (shared?.decision.ok) undo.push(d.shard(shared.shard).releaseHold(r.id));
  const quotaRefused = windowsOk && user.budget === null;
  if (!quotaRefused) {
    if (user.window.success && user.budget?.ok !== false) undo.push(cancelInUser(d, r));
    if (narrow.success || wide?.success) undo.push(cancelInIp(d, r));
  }
  await Promise.all(undo);
}

/** The refusal of the first budget of `list` that `decision` says refused, or null. */
function refusalOf(list: BudgetSpec[], decision: HoldDecision, at: number): BudgetOutcome | null {
  if (decision.ok) return null;
  const b = list[decision.refusedBy] as BudgetSpec;
  return {
    ok: false,
    budget: b.name,
    settledOut: decision.settledOut,
    endsAt: budgetWindow(b, at).endsAt,
  };
}

/**
 * The admission granted: both the user's object and the shard decided a hold; the smaller one
 * stands, and the larger is trimmed to it after the answer (`pending`).
 */
function grantHold(
  d: DurableLayout,
  r: AdmissionRequest,
  { user, shared }: Answers,
  ip: WindowResult,
  hasOwn: boolean,
): Admission {
  const mine = user.budget as Held;
  const theirs = (shared?.decision ?? mine) as Held;
  const hold = mine.holdMicroUsd <= theirs.holdMicroUsd ? mine : theirs;
  const pending: Promise<unknown>[] = [];
  if (mine.holdMicroUsd > hold.holdMicroUsd && hasOwn)
    pending.push(d.user(r.userKey).trimHold(r.id, hold.holdMicroUsd));
  if (shared && theirs.holdMicroUsd > hold.holdMicroUsd)
    pending.push(d.shard(shared.shard).trimHold(r.id, hold.holdMicroUsd));
  return {
    user: user.window,
    ip,
    quota: user.quota,
    budget: {
      ok: true,
      maxTokens: hold.maxTokens,
      ticket: {
        id: r.id,
        at: r.at,
        microUsd: hold.holdMicroUsd,
        anonymous: r.anonymous,
        shard: shared?.shard ?? 0,
      },
    },
    pending: Promise.all(pending).then(() => {}),
  };
}

/** Undoes admission `r` everywhere it may have counted or held; idempotent. */
export async function cancelAdmission(d: DurableLayout, r: AdmissionRequest): Promise<void> {
  const releases = d.shared(r.anonymous).length
    ? Array.from({ length: d.shards }, (_, k) => d.shard(k).releaseHold(r.id))
    : [];
  await Promise.all([cancelInUser(d, r), cancelInIp(d, r), ...releases]);
}

/** Undoes what `r` counted in the user's object (window, quota unit, own hold). */
function cancelInUser(d: DurableLayout, r: AdmissionRequest) {
  const hourly = r.anonymous ? d.specs.anonHourly : null;
  return d.user(r.userKey).cancelAdmission(r.id, "rate:user", d.specs.user, hourly, r.at, d.now());
}

/** The /64's object and the /48's: a cancel of what counted nothing only marks it. */
function cancelInIp(d: DurableLayout, r: AdmissionRequest) {
  const now = d.now();
  return Promise.all([
    d.ip(r.ipKey).cancelAdmission(r.id, "rate:ip", d.specs.ip, null, r.at, now),
    r.wideIpKey
      ? d.ip(r.wideIpKey).cancelAdmission(r.id, "rate:ip", d.specs.ipWide, null, r.at, now)
      : null,
  ]);
}
