/**
 * @module What each budget-soak request sends. Besides the plain mix, two kinds aimed at money
 * recorded without the provider's final usage (issue 19): prompts adversarial to a token
 * estimator (runs of mixed whitespace, control and unicode spaces, emoji, CJK: many o200k tokens
 * per word-like piece) that the client leaves after the first chunk, and a reasoning model that
 * thinks silently, left during the silence, so no usage ever reaches the gateway. Every request
 * names itself to the fake upstream (`id`), which bills it with o200k (`bill=1`).
 */
import { type StreamOptions, streamRequest, type Target } from "../lib/client";
import {
  type AbortPlan,
  ADDRESSES,
  abortPlan,
  type BudgetSent,
  type Caller,
  modelOf,
  plainMessage,
  type StreamKind,
  zipf,
} from "./budget-plan";

/** Shares of the load (the drain sends plain streams only, so its exhaustion bound holds). */
export const ADVERSARIAL_SHARE = 0.1;
export const REASONING_SHARE = 0.08;

/** Pieces the adversarial prompts repeat: each is several o200k tokens that an estimator may see as one. */
const HOSTILE_PIECES = [
  " \t",
  "\v\f\v ",
  "\n \r\n\t",
  "\u2003\u00a0\u3000\u2009\u200b\u2028",
  "👨‍👩‍👧‍👦🏳️‍🌈🧑🏿‍💻",
  "龘靐齉爩鱻麤丂丄㐀",
];
/** Output of the same kind for half of them (a chunk of mixed whitespace is many tokens). */
const HOSTILE_OUTPUT = Buffer.from(" \t\v".repeat(4)).toString("base64url");

/** Reasoning models (signed-in callers only: the soak's ANON_MODELS is gpt-4o-mini alone). */
const REASONING_MODELS = ["o4-mini", "gpt-5-mini"] as const;
/** µUSD per input token (whole-µUSD bounds), to size an adversarial stream's cap above its input. */
const INPUT_MICRO_PER_TOKEN = { "gpt-4o-mini": 0.15, "gpt-4o": 2.5 } as const;

const rand = (n: number) => Math.floor(Math.random() * n);
const pick = <T>(xs: readonly T[]): T => xs[rand(xs.length)] as T;
const utf8 = (s: string) => Buffer.byteLength(s);

/** The kind of the `i`th request: the drain's are all plain. */
function kindOf(aborts: boolean): StreamKind {
  if (!aborts) return "plain";
  const roll = Math.random();
  return roll < ADVERSARIAL_SHARE
    ? "adversarial"
    : roll < ADVERSARIAL_SHARE + REASONING_SHARE
      ? "reasoning"
      : "plain";
}

/**
 * An adversarial stream: 200 to 1,500 bytes of hostile pieces, then the directive; left after
 * its first chunk. Its cap is its caller's usual one plus its prompt's worst-case input, so it is
 * refused only by a budget, never by its own cap.
 */
function adversarial(caller: Caller, id: string, baseCapMicro: number): Partial<StreamOptions> {
  const piece = pick(HOSTILE_PIECES);
  const bytes = 200 + rand(1301);
  const body = `a${piece.repeat(Math.max(1, Math.floor(bytes / utf8(piece))))}`;
  const output = Math.random() < 0.5 ? ` textb64=${HOSTILE_OUTPUT}` : "";
  const message = `${body} [[fake tokens=${5 + rand(20)} delay=${1 + rand(5)}${output} bill=1 id=${id}]]`;
  const inputMicro = Math.ceil(
    (utf8(message) + 8) * INPUT_MICRO_PER_TOKEN[modelOf(caller.anonymous)],
  );
  return {
    message,
    model: modelOf(caller.anonymous),
    costCapUsd: (baseCapMicro + inputMicro) / 1e6,
    abortAfterTokens: 1,
  };
}

/**
 * A reasoning stream: 50 to 400 hidden reasoning tokens thought during 400 to 1,200 ms of
 * silence, then 5 to 30 visible tokens. Three in four are left during the silence (the provider
 * may bill its whole max_completion_tokens); the rest run to the end, with usage.
 */
function reasoning(id: string): { o: Partial<StreamOptions>; plan: AbortPlan } {
  const silence = 400 + rand(801);
  const message = `Think [[fake think=${50 + rand(351)} firstDelay=${silence} tokens=${5 + rand(26)} delay=2 bill=1 id=${id}]]`;
  const leave = Math.random() < 0.75;
  return {
    o: {
      message,
      model: pick(REASONING_MODELS),
      ...(leave ? { abortAfterMs: rand(silence - 200) } : {}),
    },
    plan: leave ? "abort_ms" : "full",
  };
}

/**
 * One soak request: half anonymous, half signed-in (reasoning: signed-in), callers picked by
 * `zipf`; caps from a few tokens' worth to several hundred; `aborts` false for the drain, which
 * runs plain streams to the end.
 */
export function budgetRequest(
  t: Target,
  callers: { anon: Caller[]; signedIn: Caller[] },
  i: number,
  label: string,
  aborts: boolean,
): Promise<BudgetSent> {
  const kind = kindOf(aborts);
  const pool = kind === "reasoning" || Math.random() < 0.5 ? callers.signedIn : callers.anon;
  const caller = pool[zipf(pool.length)] as Caller;
  const streamId = `${label}-${i}`;
  // Anonymous: 50 to 400 µUSD (20 to 650 output tokens); signed-in: 800 to 4,000 µUSD.
  const capMicro = caller.anonymous ? 50 + rand(351) : 800 + rand(3201);
  let plan: AbortPlan = abortPlan(aborts ? Math.random() : 1);
  let o: Partial<StreamOptions>;
  if (kind === "adversarial") {
    plan = "abort_tokens";
    o = adversarial(caller, streamId, capMicro);
  } else if (kind === "reasoning") {
    const r = reasoning(streamId);
    plan = r.plan;
    o = { costCapUsd: capMicro / 1e6, ...r.o };
  } else {
    const { text, tokens } = plainMessage(i, streamId);
    o = {
      message: text,
      model: modelOf(caller.anonymous),
      costCapUsd: capMicro / 1e6,
      ...(plan === "abort_tokens" ? { abortAfterTokens: 1 + rand(tokens - 1) } : {}),
      ...(plan === "abort_ms" ? { abortAfterMs: rand(100) } : {}),
      ...(plan === "abort_before_headers" ? { abortBeforeHeadersMs: rand(15) } : {}),
    };
  }
  return streamRequest(t, {
    message: "",
    token: caller.token,
    ip: ADDRESSES[rand(ADDRESSES.length)],
    streamId,
    timeoutMs: 30_000,
    ...o,
  }).then((r) => ({ streamId, caller, kind, plan, r }));
}
