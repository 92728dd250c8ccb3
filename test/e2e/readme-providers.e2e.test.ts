/**
 * @module The documented provider configurations, read as written: each `toml` block of the section
 * "Providers, models and fallbacks" of docs/configuration.md goes through wrangler's own TOML
 * reader (as `wrangler deploy` would read it) and then through the registry's parser in production
 * mode, so a typo in the docs (a provider name, a missing price) fails here rather than in
 * someone's deploy.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { experimental_readRawConfig } from "wrangler";
import { parseRegistry } from "../../src/stream/registry";
import { readDoc } from "./docs";

/** The secrets the documented configurations name, and an `AI` binding for `workers-ai`. */
const SECRETS = {
  OPENAI_API_KEY: "sk-o",
  ANTHROPIC_API_KEY: "sk-a1",
  ANTHROPIC_API_KEY_2: "sk-a2",
  GROQ_API_KEY: "gsk",
  AI: { run: async () => new ReadableStream() },
};

async function section(): Promise<string> {
  const doc = await readDoc("docs/configuration.md");
  const start = doc.indexOf("## Providers, models and fallbacks");
  if (start === -1)
    throw new Error("docs/configuration.md has no section Providers, models and fallbacks");
  const end = doc.indexOf("\n## ", start + 1);
  return doc.slice(start, end === -1 ? undefined : end);
}

/** The `[vars]` of a wrangler.toml holding `block`, as wrangler reads them. */
async function varsOf(block: string): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(tmpdir(), "readme-providers-"));
  try {
    const path = join(dir, "wrangler.toml");
    await writeFile(path, `name = "readme"\nmain = "index.js"\n${block}`);
    return (experimental_readRawConfig({ config: path }).rawConfig.vars ?? {}) as Record<
      string,
      unknown
    >;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe("the provider section of docs/configuration.md", () => {
  it("has three worked configurations that wrangler reads and the registry accepts in production", async () => {
    const found = [...(await section()).matchAll(/```toml\n([\s\S]*?)```/g)].map(
      (m) => m[1] as string,
    );
    // A block without providers adds to the first configuration (adding a model to it).
    const blocks = found.map((b) => (b.includes("[vars.PROVIDERS.") ? b : `${found[0]}\n${b}`));
    const routes: Record<string, string[]>[] = [];
    for (const block of blocks) {
      const registry = parseRegistry({ ...SECRETS, ...(await varsOf(block)) }, true);
      routes.push(
        Object.fromEntries(
          registry.ids.map((id) => [
            id,
            (registry.models.get(id)?.route ?? []).map(
              (t) => `${t.provider.name}:${t.provider.type}`,
            ),
          ]),
        ),
      );
      for (const id of registry.ids) {
        for (const t of registry.models.get(id)?.route ?? [])
          expect(t.provider.unavailable).toBe(false);
      }
    }
    expect(routes).toEqual([
      { "gpt-4o-mini": ["openai:openai"], "o4-mini": ["openai:openai"] },
      { "claude-sonnet": ["anthropic:anthropic", "openai:openai"] },
      { "llama-3-3-70b": ["groq:openai", "cf:workers-ai"] },
      {
        "gpt-4o-mini": ["openai:openai"],
        "o4-mini": ["openai:openai"],
        "gpt-4-1": ["openai:openai"],
      },
    ]);
  });

  it("says how to add a model and its prices, and what fallback does and does not do", async () => {
    const text = await section();
    for (const heading of [
      "**Adding a model, or a new price.**",
      "**What fallback does.**",
      "**What fallback does not do.**",
      "**Money across a route.**",
    ]) {
      expect(text).toContain(heading);
    }
  });
});
