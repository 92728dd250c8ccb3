#!/usr/bin/env node
/**
 * @module `npm run token`: a signed-in user's access token for local development, shaped as
 * Supabase signs one with its legacy HS256 secret (aud and role `authenticated`, `sub`, `iat`,
 * `exp`, and `iss` when SUPABASE_URL or SUPABASE_PROJECT_ID is set), signed with
 * SUPABASE_JWT_SECRET. The secret and the URL come from the environment, else from .dev.vars,
 * the values `npm run dev` gives the worker. Prints the token alone, for `TOKEN=$(npm run -s token)`.
 *
 * Usage: npm run -s token [-- --sub <user id>] [--ttl <seconds>]
 */
import { existsSync, readFileSync } from "node:fs";
import { SignJWT } from "jose";

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
};

/** KEY=VALUE lines of .dev.vars (run from the project's root, as `npm run` does). */
function devVars() {
  if (!existsSync(".dev.vars")) return {};
  const vars = {};
  for (const line of readFileSync(".dev.vars", "utf8").split(/\r?\n/)) {
    const m = /^\s*(?:export\s+)?([\w.-]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) vars[m[1]] = m[2].replace(/^(['"])(.*)\1$/, "$2");
  }
  return vars;
}

const vars = { ...devVars(), ...process.env };
const secret = vars.SUPABASE_JWT_SECRET?.trim();
if (!secret) {
  console.error(
    "npm run token: SUPABASE_JWT_SECRET is not set. Put one in .dev.vars (locally any string of\n" +
      "32 characters or more, e.g. from `openssl rand -base64 32`), restart npm run dev, and run this again.",
  );
  process.exit(1);
}
const url =
  vars.SUPABASE_URL?.trim().replace(/\/+$/, "") ||
  (vars.SUPABASE_PROJECT_ID?.trim()
    ? `https://${vars.SUPABASE_PROJECT_ID.trim()}.supabase.co`
    : "");
const ttl = Number(flag("--ttl", "3600"));
if (!Number.isInteger(ttl) || ttl < 1) {
  console.error("npm run token: --ttl must be a whole number of seconds");
  process.exit(2);
}

let jwt = new SignJWT({ role: "authenticated", is_anonymous: false })
  .setProtectedHeader({ alg: "HS256", typ: "JWT" })
  .setSubject(flag("--sub", "local-dev-user"))
  .setAudience("authenticated")
  .setIssuedAt()
  .setExpirationTime(`${ttl}s`);
if (url) jwt = jwt.setIssuer(`${url}/auth/v1`);
console.log(await jwt.sign(new TextEncoder().encode(secret)));
