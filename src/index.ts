/** @module The app: middleware order, routes, errors, and the Worker export. */
import { type Context, Hono } from "hono";
import { secureHeaders } from "hono/secure-headers";
import type { AppEnv, Bindings } from "./env";
import { AppError } from "./errors";
import { consumeLedger } from "./ledger/consume";
import { D1LedgerBook } from "./ledger/d1-book";
import { allowListedOrigins } from "./observe/cors";
import { handleError } from "./observe/error-response";
import { requestContext } from "./observe/request";
import { adminRoutes } from "./routes/admin";
import { anonSessionRoutes } from "./routes/anon-session";
import { metricsRoutes } from "./routes/metrics";
import { modelRoutes } from "./routes/models";
import { openAiRoutes } from "./routes/openai";
import { frameSrc, scriptSrc, serveAsset } from "./routes/page";
import { streamRoutes } from "./routes/stream";
import { streamsRoutes } from "./routes/streams";
import { usageRoutes } from "./routes/usage";

export { LimitsStore } from "./limits/durable-object";
export { StreamOwner } from "./stream/owner";

/**
 * Each API path and the methods it answers; any other method is a 405 with `Allow`. HEAD runs
 * the GET handler without a body, so it is listed only where that is harmless (not the stream).
 */
const API_METHODS: Record<string, string[]> = {
  "/api/v1/anon_session": ["POST"],
  "/api/v1/stream": ["GET", "POST"],
  "/api/v1/usage": ["GET", "HEAD"],
  "/api/v1/metrics": ["GET", "HEAD"],
  "/api/v1/models": ["GET", "HEAD"],
  "/v1/chat/completions": ["POST"],
  "/v1/models": ["GET", "HEAD"],
  "/api/v1/admin/spend": ["GET", "HEAD"],
  "/api/v1/admin/ledger": ["GET", "HEAD", "POST"],
};

const app = new Hono<AppEnv>();

app.use(requestContext);
app.use(
  secureHeaders({
    contentSecurityPolicy: {
      defaultSrc: ["'none'"],
      scriptSrc: [scriptSrc],
      styleSrc: ["'self'"],
      imgSrc: ["'self'", "data:"],
      connectSrc: ["'self'"],
      frameSrc: [frameSrc],
      baseUri: ["'none'"],
      formAction: ["'none'"],
      frameAncestors: ["'none'"],
    },
    crossOriginEmbedderPolicy: false,
  }),
);

app.use("/api/v1/*", allowListedOrigins);
app.use("/v1/*", allowListedOrigins);

app.get("/healthz", (c) => c.json({ status: "ok" }));
app.route("/api/v1/anon_session", anonSessionRoutes);
app.route("/api/v1/stream", streamRoutes);
app.route("/api/v1/streams", streamsRoutes);
app.route("/api/v1/usage", usageRoutes);
app.route("/api/v1/metrics", metricsRoutes);
app.route("/api/v1/models", modelRoutes);
app.route("/v1", openAiRoutes);
app.route("/api/v1/admin", adminRoutes);

/** Unknown paths of the APIs are 404; a known path with a wrong method is 405 with `Allow`. */
function unknownOrWrongMethod(c: Context<AppEnv>): Response {
  const allowed = API_METHODS[c.req.path];
  if (!allowed) throw new AppError("not_found", "no such endpoint");
  const allow = [...allowed, "OPTIONS"].join(", ");
  if (c.req.method === "OPTIONS") return c.body(null, 204, { Allow: allow });
  throw new AppError(
    "method_not_allowed",
    `use ${allowed.filter((m) => m !== "HEAD").join(" or ")}`,
    {
      headers: { Allow: allow },
    },
  );
}

app.all("/api/*", unknownOrWrongMethod);
app.all("/v1/*", unknownOrWrongMethod);
app.all("/healthz", () => {
  throw new AppError("method_not_allowed", "use GET", { headers: { Allow: "GET, HEAD" } });
});

app.get("/", (c) => c.redirect("/magic/", 302));
app.all("*", serveAsset);

app.onError(handleError);

/** The Worker: the app answers requests; the ledger queue's batches are written to D1. */
export default {
  fetch: app.fetch,
  async queue(batch: MessageBatch<unknown>, env: Bindings): Promise<void> {
    await consumeLedger(batch, new D1LedgerBook(env.LEDGER_DB));
  },
} satisfies ExportedHandler<Bindings>;
