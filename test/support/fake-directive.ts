/**
 * @module The fake upstream's directive: `[[fake ...]]` in the last user message chooses how
 * it answers (test/support/fake-upstream.ts).
 *
 * id: key for GET /__test/requests/<id>; tokens: how many to stream; delay / firstDelay: ms
 * before each later / the first token; usage=0: omit the usage chunk; status: answer this
 * HTTP status instead (429 adds Retry-After: retryAfter); cut=N: destroy the socket before
 * token N; hang=N: go silent before token N; bad=N: send malformed JSON as token N;
 * text / textb64: the token text (base64url for text with spaces or newlines);
 * headerDelay=MS: wait MS before answering at all (status and headers);
 * ignoremax=1: stream all tokens whatever max_tokens says; linger=MS: wait MS before a cut, so
 * the tokens written before it reach the client (a socket destroyed right after a write can
 * lose that write in transit); reasoning=N: first stream N reasoning tokens, in the field
 * `rfield` names (`reasoning_content`, the default, `reasoning`, or `mistral` for thinking parts),
 * and, when the request bounds output, count them against that bound as OpenAI does;
 * early=1: send a usage chunk (completion_tokens 0) before the first token, as a provider that
 * reports usage early does (it is not the final word); think=N: N hidden reasoning tokens, thought
 * during the silence of firstDelay (billed in usage only, as OpenAI's reasoning models do);
 * bill=1: count the request with o200k (fake-bill.ts), report that count as its usage, and keep
 * the bill in the record (GET /__test/bills?prefix=P lists the bills of ids starting with P).
 */

export interface Directive {
  id: string;
  tokens: number;
  delay: number;
  firstDelay: number;
  headerDelay: number;
  usage: boolean;
  status: number;
  cut: number;
  hang: number;
  bad: number;
  retryAfter: number;
  text: string;
  ignoremax: number;
  linger: number;
  reasoning: number;
  rfield: string;
  early: number;
  think: number;
  bill: number;
}

/** The directive of `message` (defaults for what it does not say). */
export function parseDirective(message: string): Directive {
  const d: Directive = {
    id: "",
    tokens: 5,
    delay: 0,
    firstDelay: 0,
    headerDelay: 0,
    usage: true,
    status: 200,
    cut: -1,
    hang: -1,
    bad: -1,
    retryAfter: 7,
    text: "tok",
    ignoremax: 0,
    linger: 0,
    reasoning: 0,
    rfield: "reasoning_content",
    early: 0,
    think: 0,
    bill: 0,
  };
  const m = /\[\[fake([^\]]*)\]\]/.exec(message);
  for (const pair of (m?.[1] ?? "").trim().split(/\s+/)) {
    const [k, v = ""] = pair.split("=");
    if (k === "id" || k === "text" || k === "rfield") d[k] = v;
    else if (k === "textb64") d.text = Buffer.from(v, "base64url").toString("utf8");
    else if (k === "usage") d.usage = v !== "0";
    else if (k && k in d) (d as unknown as Record<string, number>)[k] = Number(v);
  }
  return d;
}
