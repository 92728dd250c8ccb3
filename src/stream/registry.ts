/**
 * @module The model registry as configuration: `PROVIDERS`, `MODELS` and `DEFAULT_MODEL`, parsed
 * and checked once per isolate with the rest of the config. Unset, they mean the built-in
 * registry of models.ts behind the one `openai` provider of `OPENAI_BASE_URL` / `OPENAI_API_KEY`.
 */
import * as z from "zod";
import { MAX_OUTPUT_TOKENS } from "./cost";
import { MODELS as BUILT_IN, DEFAULT_MODEL as BUILT_IN_DEFAULT, type ModelInfo } from "./models";

export const PROVIDER_TYPES = ["openai", "anthropic", "workers-ai"] as const;
export type ProviderType = (typeof PROVIDER_TYPES)[number];

/** The Worker's `AI` binding, narrowed to the one method the workers-ai adapter calls. */
export interface AiBinding {
  run(model: string, inputs: Record<string, unknown>, options?: unknown): Promise<unknown>;
}

/** One provider of `PROVIDERS`, its secrets resolved. Never logged: it holds keys. */
export interface ProviderConfig {
  /** Its name in `PROVIDERS`: what `done.provider`, the ledger and the metrics say. */
  name: string;
  type: ProviderType;
  /** No trailing slash; empty for workers-ai. */
  baseUrl: string;
  /** Key values in rotation order; empty: the provider takes no key (a local server). */
  keys: readonly string[];
  /** Extra request headers, `$SECRET` values resolved. */
  headers: Readonly<Record<string, string>>;
  /** A secret it names is not set (development only; production refuses the config). */
  unavailable: boolean;
  /** workers-ai: the `AI` binding. */
  binding: AiBinding | undefined;
}

/** One target of a route: a provider and its model, with the prices of this target. */
export interface RouteTarget {
  provider: ProviderConfig;
  /** `id` is the client's model id; `upstreamName`, prices and provider are this target's. */
  model: ModelInfo;
}

/** A model of the registry: priced at the most expensive target of its route (what the hold covers). */
export interface RegistryModel extends ModelInfo {
  route: readonly RouteTarget[];
  /** `max_output_tokens`: an upper bound of `max_tokens` for this model. */
  maxOutputTokens: number | null;
}

export interface Registry {
  models: ReadonlyMap<string, RegistryModel>;
  /** In configuration order; never empty. */
  ids: readonly [string, ...string[]];
  defaultModel: string;
  /** `PROVIDERS` and `MODELS` were unset: today's registry. */
  builtIn: boolean;
}

/** A registry that is not valid; its message names the field and never a secret's value. */
export class RegistryError extends Error {
  override name = "RegistryError";
}

const NAME = /^[A-Za-z0-9_-]{1,32}$/;
const SECRET = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const HEADER = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/;
const price = z.number().finite().min(0).max(100_000);

const providerSchema = z.strictObject({
  type: z.enum(PROVIDER_TYPES),
  base_url: z.url({ protocol: /^https?$/ }).optional(),
  api_keys: z.array(z.string().regex(SECRET, "must name a secret")).max(16).optional(),
  headers: z.record(z.string().regex(HEADER, "not a header name"), z.string().max(4096)).optional(),
});
const targetSchema = z.strictObject({
  provider: z.string().min(1),
  model: z.string().min(1).max(256),
  input_usd_per_million: price.optional(),
  output_usd_per_million: price.optional(),
});
const modelSchema = z.strictObject({
  route: z.array(targetSchema).min(1, "needs at least one target").max(4, "at most 4 targets"),
  input_usd_per_million: price.optional(),
  output_usd_per_million: price.optional(),
  reasoning: z.boolean().optional(),
  max_output_tokens: z.int().min(1).max(MAX_OUTPUT_TOKENS).optional(),
});
const providersSchema = z.record(
  z.string().regex(NAME, "names are 1-32 of A-Z a-z 0-9 _ -"),
  providerSchema,
);
const modelsSchema = z.record(
  z.string().regex(/^[A-Za-z0-9._:/@-]{1,128}$/, "not a model id"),
  modelSchema,
);

type Env = Record<string, unknown>;

/** A `[vars]` table arrives as an object, `--var` / `.dev.vars` / a secret as a JSON string. */
function objectVar(env: Env, name: string): unknown {
  const raw = env[name];
  if (raw === undefined || raw === null || raw === "") return undefined;
  if (typeof raw !== "string") return raw;
  try {
    return JSON.parse(raw);
  } catch {
    throw new RegistryError(`${name}: not JSON`);
  }
}

function parseWith<T>(schema: z.ZodType<T>, value: unknown, name: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => {
    const path = [name, ...i.path.map(String)].join(".");
    return `${path}: ${i.message}`;
  });
  throw new RegistryError(issues.join("; "));
}

const DEFAULT_BASE: Record<ProviderType, string> = {
  openai: "https://api.openai.com/v1",
  anthropic: "https://api.anthropic.com/v1",
  "workers-ai": "",
};

/** A secret's value, or undefined; a name that is not set is refused in production. */
function secret(env: Env, name: string, field: string, production: boolean): string | undefined {
  const value = env[name];
  if (typeof value === "string" && value.trim()) return value.trim();
  if (production) throw new RegistryError(`${field}: the secret ${name} is not set`);
  return undefined;
}

function providerConfig(
  name: string,
  p: z.infer<typeof providerSchema>,
  env: Env,
  production: boolean,
): ProviderConfig {
  const field = `PROVIDERS.${name}`;
  const baseUrl = (p.base_url ?? DEFAULT_BASE[p.type]).replace(/\/+$/, "");
  if (production && baseUrl && !baseUrl.startsWith("https:")) {
    throw new RegistryError(`${field}.base_url: must be https in production`);
  }
  let unavailable = false;
  const keys: string[] = [];
  for (const keyName of p.api_keys ?? []) {
    const value = secret(env, keyName, `${field}.api_keys`, production);
    if (value) keys.push(value);
    else unavailable = true;
  }
  const headers: Record<string, string> = {};
  for (const [header, value] of Object.entries(p.headers ?? {})) {
    if (!value.startsWith("$")) {
      headers[header] = value;
      continue;
    }
    const resolved = secret(env, value.slice(1), `${field}.headers.${header}`, production);
    if (resolved) headers[header] = resolved;
    else unavailable = true;
  }
  let binding: AiBinding | undefined;
  if (p.type === "workers-ai") {
    const ai = env.AI as Partial<AiBinding> | undefined;
    if (typeof ai?.run === "function") binding = ai as AiBinding;
    else if (production) {
      throw new RegistryError(
        `${field}: type workers-ai needs the AI binding ([ai] binding = "AI")`,
      );
    } else unavailable = true;
  }
  return { name, type: p.type, baseUrl, keys, headers, unavailable, binding };
}

/** The built-in `openai` provider: `OPENAI_BASE_URL` and `OPENAI_API_KEY`, as before the registry. */
function builtInProvider(env: Env): ProviderConfig {
  const key = typeof env.OPENAI_API_KEY === "string" ? env.OPENAI_API_KEY.trim() : "";
  const base = typeof env.OPENAI_BASE_URL === "string" && env.OPENAI_BASE_URL;
  return {
    name: "openai",
    type: "openai",
    baseUrl: (base || DEFAULT_BASE.openai).replace(/\/+$/, ""),
    keys: key ? [key] : [],
    headers: {},
    unavailable: !key,
    binding: undefined,
  };
}

type ModelSpec = z.infer<typeof modelSchema>;

/** Today's five models, as MODELS entries on the provider named `openai`. */
function builtInModels(): Record<string, ModelSpec> {
  const out: Record<string, ModelSpec> = {};
  for (const m of Object.values(BUILT_IN)) {
    out[m.id] = {
      route: [{ provider: "openai", model: m.upstreamName }],
      input_usd_per_million: m.inputUsdPerMillion,
      output_usd_per_million: m.outputUsdPerMillion,
      reasoning: m.reasoning,
    };
  }
  return out;
}

function registryModel(
  id: string,
  spec: ModelSpec,
  providers: ReadonlyMap<string, ProviderConfig>,
): RegistryModel {
  // A route to a model known to reason reasons unless the operator says otherwise: without it a
  // record with no usage would miss the hidden reasoning, and silent thinking would time out.
  const reasoning =
    spec.reasoning ??
    spec.route.some((t) => (BUILT_IN as Record<string, ModelInfo>)[t.model]?.reasoning === true);
  const route = spec.route.map((t, i): RouteTarget => {
    const field = `MODELS.${id}.route.${i}`;
    const provider = providers.get(t.provider);
    if (!provider) throw new RegistryError(`${field}.provider: no provider named ${t.provider}`);
    const input = t.input_usd_per_million ?? spec.input_usd_per_million;
    const output = t.output_usd_per_million ?? spec.output_usd_per_million;
    if (input === undefined) throw new RegistryError(`MODELS.${id}.input_usd_per_million: missing`);
    if (output === undefined)
      throw new RegistryError(`MODELS.${id}.output_usd_per_million: missing`);
    if (output === 0) throw new RegistryError(`MODELS.${id}.output_usd_per_million: must be > 0`);
    const builtIn = (BUILT_IN as Record<string, ModelInfo>)[t.model];
    return {
      provider,
      model: {
        id,
        provider: provider.name,
        upstreamName: t.model,
        inputUsdPerMillion: input,
        outputUsdPerMillion: output,
        // OpenAI's reasoning families refuse `max_tokens`; the built-in models keep their own.
        maxTokensParam:
          builtIn && provider.type === "openai"
            ? builtIn.maxTokensParam
            : reasoning && provider.type === "openai"
              ? "max_completion_tokens"
              : "max_tokens",
        reasoning,
      },
    };
  });
  const first = route[0] as RouteTarget;
  return {
    ...first.model,
    inputUsdPerMillion: Math.max(...route.map((t) => t.model.inputUsdPerMillion)),
    outputUsdPerMillion: Math.max(...route.map((t) => t.model.outputUsdPerMillion)),
    route,
    maxOutputTokens: spec.max_output_tokens ?? null,
  };
}

/**
 * The registry of `env`; throws RegistryError naming the first bad field. In production a
 * secret that a provider names must be set and every base URL must be https.
 */
export function parseRegistry(env: Env, production: boolean): Registry {
  const rawProviders = objectVar(env, "PROVIDERS");
  const rawModels = objectVar(env, "MODELS");
  const providers = new Map<string, ProviderConfig>();
  if (rawProviders === undefined) {
    const openai = builtInProvider(env);
    // Unset both, a missing key is today's `model_unavailable`; with MODELS set it is a typo.
    if (production && openai.unavailable && rawModels !== undefined) {
      throw new RegistryError("PROVIDERS: unset, so MODELS needs OPENAI_API_KEY, which is not set");
    }
    providers.set("openai", openai);
  } else {
    const parsed = parseWith(providersSchema, rawProviders, "PROVIDERS");
    for (const [name, p] of Object.entries(parsed)) {
      providers.set(name, providerConfig(name, p, env, production));
    }
  }
  if (rawModels === undefined && !providers.has("openai")) {
    throw new RegistryError("MODELS: unset, so the built-in models need a provider named openai");
  }
  const specs =
    rawModels === undefined ? builtInModels() : parseWith(modelsSchema, rawModels, "MODELS");
  const models = new Map<string, RegistryModel>();
  for (const [id, spec] of Object.entries(specs)) {
    models.set(id, registryModel(id, spec, providers));
  }
  const ids = [...models.keys()];
  if (ids.length === 0) throw new RegistryError("MODELS: must hold at least one model");
  const builtIn = rawProviders === undefined && rawModels === undefined;
  const wanted = typeof env.DEFAULT_MODEL === "string" ? env.DEFAULT_MODEL.trim() : "";
  const defaultModel = wanted || (builtIn ? BUILT_IN_DEFAULT : (ids[0] as string));
  if (!models.has(defaultModel)) {
    throw new RegistryError(`DEFAULT_MODEL: ${defaultModel} is not in MODELS`);
  }
  return { models, ids: ids as [string, ...string[]], defaultModel, builtIn };
}
