/**
 * @module The Upstash store's protocol: every name a Lua script reads is one the TypeScript
 * defines (a misspelt `KEYS[K.mrak]` is nil in Lua, not an error), and the names keep their
 * positions.
 */
import { describe, expect, it } from "vitest";
import {
  ADMIT_ANSWER,
  ADMIT_ARGS,
  ADMIT_KEYS,
  byName,
  fieldsOf,
  REFUSED,
  SCRIPTS,
} from "../../src/limits/upstash-protocol";

/** The tables a script defines (`local K = {a = 1, ...}`) and the fields it reads of them. */
function namesOf(script: string) {
  const defined = new Map<string, Set<string>>();
  for (const m of script.matchAll(/^local (\w+) = \{(.*)\}$/gm)) {
    const fields = [...(m[2] ?? "").matchAll(/(\w+) = /g)].map((f) => f[1] as string);
    defined.set(m[1] as string, new Set(fields));
  }
  const used = [...script.matchAll(/\b(K|A|R|C|L|W|REFUSED)\.(\w+)/g)].map(
    (m): [string, string] => [m[1] as string, m[2] as string],
  );
  return { defined, used };
}

describe("the Upstash scripts' names", () => {
  it.each(Object.keys(SCRIPTS))("%s reads only names its prelude defines", (name) => {
    const { defined, used } = namesOf(SCRIPTS[name as keyof typeof SCRIPTS]);
    const missing = used.filter(([table, field]) => !defined.get(table)?.has(field));
    expect(missing).toEqual([]);
  });

  it("numbers keys, arguments and answers from 1, as Lua does", () => {
    expect(SCRIPTS.admit).toContain("local K = {userCurrent = 1, userPrevious = 2,");
    expect(SCRIPTS.admit).toContain("mark = 5,");
    expect(SCRIPTS.admit).toContain(`budgets = ${ADMIT_ARGS.length + 1}}`);
    expect(SCRIPTS.admit).toContain(`size = ${ADMIT_ANSWER.length}}`);
    expect(ADMIT_KEYS.indexOf("total") + 1).toBe(10);
  });

  it("writes values in the order of their names and reads answers back by name", () => {
    expect(byName(["b", "a"] as const, { a: 1, b: "x" })).toEqual(["x", "1"]);
    const answer = fieldsOf(ADMIT_ANSWER, [REFUSED.cancelled, 0, 0]);
    expect(answer.refused).toBe(REFUSED.cancelled);
    // A short answer's missing fields read as 0, never undefined.
    expect(answer.hold).toBe(0);
  });
});
