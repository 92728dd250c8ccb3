/**
 * @module POST /v1/chat/completions and GET /v1/models: the native stream's gate, session and
 * ledger behind the OpenAI chat-completions wire format. Only the input adapter and the encoder differ.
 */
import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import { requireAuth } from "../auth/middleware";
import type { Config } from "../config";
import type { AppEnv } from "../env";
import { AppError } from "../errors";
import { chatInputSchema } from "../input/chat-input";
import { capBounds, mayUse, toStreamRequest } from "../input/request";
import { limitBodyTo, requireJsonObject, validateWith } from "../input/validate";
import { clientIp } from "../limits/address";
import { enforceLimits } from "../limits/middleware";
import { openAiChunks, openAiCompletion } from "../stream/openai-wire";
import { requireProvider } from "../stream/select-provider";
import { streamAnswer } from "../stream/stage";
import type { WireFormat } from "../stream/wire";

type Schema = ReturnType<typeof chatInputSchema>;
/** Per config: the schemas for [signed in, anonymous]. */
const schemas = new WeakMap<Config, Schema[]>();
function schemaFor(config: Config, anonymous: boolean): Schema {
  let pair = schemas.get(config);
  if (!pair) {
    pair = [false, true].map((anon) => chatInputSchema(config, capBounds(config, anon)));
    schemas.set(config, pair);
  }
  return pair[anonymous ? 1 : 0] as Schema;
}

/** Built once: the usage chunk is the only difference between two streams' formats. */
const CHUNKS: Record<"usage" | "plain", WireFormat> = {
  usage: openAiChunks(true),
  plain: openAiChunks(false),
};

/** The OpenAI input adapter: the body, ending in the validated request and the wire format. */
const setChatInput = validateWith(
  "json",
  (c) => schemaFor(c.get("config"), c.get("principal").isAnonymous),
  (c, { fields, reply }) => {
    c.set("streamInput", toStreamRequest(c.get("config"), c.get("principal"), fields));
    const chunks = reply.includeUsage ? CHUNKS.usage : CHUNKS.plain;
    c.set("wire", reply.stream ? chunks : openAiCompletion);
  },
);

/**
 * An unknown model is 404 `model_not_found` with `param: "model"`, as OpenAI answers it (SDKs
 * raise NotFoundError), before the rest of the body is checked. The native API keeps its 422.
 */
const requireKnownModel = createMiddleware<AppEnv>(async function requireKnownModel(c, next) {
  const { model } = (await c.req.json()) as { model?: unknown };
  if (typeof model === "string" && !c.get("config").registry.models.has(model)) {
    const shown = model.length > 64 ? `${model.slice(0, 64)}…` : model;
    throw new AppError("model_not_found", `The model ${JSON.stringify(shown)} does not exist`, {
      fields: ["model"],
    });
  }
  await next();
});

/** The OpenAI-compatible routes, mounted at /v1. */
export const openAiRoutes = new Hono<AppEnv>()
  .post(
    "/chat/completions",
    requireAuth(),
    // This surface's own limit: data URLs of images may need more than the native 64 KiB.
    limitBodyTo((c) => c.get("config").openAi.maxBodyBytes),
    requireJsonObject,
    requireKnownModel,
    setChatInput,
    requireProvider,
    clientIp,
    enforceLimits,
    streamAnswer,
  )
  .get("/models", requireAuth(), (c) => {
    const [config, principal] = [c.get("config"), c.get("principal")];
    return c.json(
      {
        object: "list",
        // Only what this caller may use: an anonymous caller sees ANON_MODELS.
        data: config.registry.ids
          .filter((id) => mayUse(config, principal, id))
          .map((id) => ({
            id,
            object: "model",
            created: 0,
            owned_by: "magic-box",
          })),
      },
      200,
      { "Cache-Control": "no-store" },
    );
  });
