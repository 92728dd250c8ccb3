/** @module GET|POST /api/v1/stream: auth, input, limits, then the model's answer as our SSE events. */
import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import { requireAuth } from "../auth/middleware";
import type { Config } from "../config";
import type { AppEnv } from "../env";
import { AppError } from "../errors";
import { capBounds, toStreamRequest } from "../input/request";
import { streamInputSchema } from "../input/stream-input";
import { limitBody, requireJsonObject, validateWith } from "../input/validate";
import { clientIp } from "../limits/address";
import { enforceLimits } from "../limits/middleware";
import { requireProvider } from "../stream/select-provider";
import { streamAnswer } from "../stream/stage";
import { nativeSse } from "../stream/wire";
import { resumeByLastEventId } from "./streams";

type Schema = ReturnType<typeof streamInputSchema>;
/** Per config: the schemas of [query, json] x [signed in, anonymous]. */
const schemas = new WeakMap<Config, Schema[]>();
function schemaFor(config: Config, fromQuery: boolean, anonymous: boolean): Schema {
  let all = schemas.get(config);
  if (!all) {
    all = [false, true].flatMap((q) =>
      [false, true].map((anon) => streamInputSchema(config, capBounds(config, anon), q)),
    );
    schemas.set(config, all);
  }
  return all[(fromQuery ? 2 : 0) + (anonymous ? 1 : 0)] as Schema;
}

/** The native input adapter: the query or the JSON body, ending in the validated request. */
const setInput = (target: "query" | "json") =>
  validateWith(
    target,
    (c) => schemaFor(c.get("config"), target === "query", c.get("principal").isAnonymous),
    (c, fields) => {
      c.set("streamInput", toStreamRequest(c.get("config"), c.get("principal"), fields));
      c.set("wire", nativeSse);
    },
  );

/**
 * Hono routes HEAD to the GET handler and drops the body: that would run, and bill, a stream
 * nobody reads. Checked before authentication, like any other wrong method.
 */
const refuseHead = createMiddleware<AppEnv>(async function refuseHead(c, next) {
  if (c.req.raw.method === "HEAD") {
    throw new AppError("method_not_allowed", "use GET or POST", {
      headers: { Allow: "GET, POST, OPTIONS" },
    });
  }
  await next();
});

/** The stream route: everything before the handler can refuse; nothing is spent until limits pass. */
export const streamRoutes = new Hono<AppEnv>()
  .get(
    "/",
    refuseHead,
    requireAuth(),
    resumeByLastEventId,
    setInput("query"),
    requireProvider,
    clientIp,
    enforceLimits,
    streamAnswer,
  )
  .post(
    "/",
    requireAuth(),
    limitBody,
    requireJsonObject,
    setInput("json"),
    requireProvider,
    clientIp,
    enforceLimits,
    streamAnswer,
  );
