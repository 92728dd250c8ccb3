/**
 * @module A child process of the bench that runs one loopback server of test/support, so the
 * load generator does not share its event loop with them. `servers upstream` runs the fake
 * OpenAI-compatible upstream; `servers upstash <redisPort> <token>` the Upstash-compatible REST
 * server; `servers worker <json>` a Worker on wrangler's dev server without the devtools
 * inspector (`unstable_startWorker`, `dev.inspector: false`); `servers miniflare <json>` the
 * Worker as `wrangler deploy` bundles it, on the Workers runtime alone (Miniflare, which
 * `wrangler dev` runs underneath), with an inspector port of its own. Prints one JSON line
 * `{"url": ...}` when listening; SIGTERM stops it.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { startFakeUpstream } from "../test/support/fake-upstream";
import { startUpstashServer } from "../test/support/upstash-server";

async function main(): Promise<void> {
  const [mode, ...args] = process.argv.slice(2);
  let close: () => Promise<void>;
  if (mode === "upstream") {
    const upstream = await startFakeUpstream();
    close = upstream.close;
    console.log(JSON.stringify({ url: upstream.url }));
  } else if (mode === "upstash") {
    const server = await startUpstashServer({ redisPort: Number(args[0]), token: args[1] ?? "" });
    close = server.close;
    console.log(JSON.stringify({ url: server.url }));
  } else if (mode === "worker") {
    const o = JSON.parse(args[0] ?? "{}") as {
      root: string;
      config: string;
      port: number;
      persist: string;
      vars: Record<string, string>;
    };
    // wrangler is loaded from the project at run time, never bundled.
    const wrangler = createRequire(join(o.root, "package.json"))("wrangler") as {
      unstable_startWorker(input: unknown): Promise<{
        ready: Promise<void>;
        url: Promise<URL>;
        dispose(): Promise<void>;
      }>;
    };
    const worker = await wrangler.unstable_startWorker({
      config: o.config,
      bindings: Object.fromEntries(
        Object.entries(o.vars).map(([k, value]) => [k, { type: "plain_text", value }]),
      ),
      dev: {
        inspector: false,
        watch: false,
        server: { hostname: "127.0.0.1", port: o.port },
        persist: o.persist,
      },
    });
    await worker.ready;
    close = () => worker.dispose();
    console.log(JSON.stringify({ url: (await worker.url).href.replace(/\/$/, "") }));
  } else if (mode === "miniflare") {
    const o = JSON.parse(args[0] ?? "{}") as {
      root: string;
      config: string;
      port: number;
      inspectorPort: number;
      persist: string;
      vars: Record<string, string>;
    };
    // Bundle exactly as a deploy would.
    const outdir = join(o.persist, "dist");
    const built = spawnSync(
      process.execPath,
      [
        join(o.root, "node_modules/wrangler/bin/wrangler.js"),
        "deploy",
        "--dry-run",
        "--outdir",
        outdir,
        "-c",
        o.config,
      ],
      { cwd: o.root, env: process.env, encoding: "utf8" },
    );
    if (built.status !== 0) {
      throw new Error(
        `bundling failed (${built.status}, ${built.error}):\n${built.stderr}${built.stdout}`,
      );
    }
    const toml = readFileSync(o.config, "utf8");
    const date = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)?.[1];
    const flags = [
      ...(/^compatibility_flags\s*=\s*\[([^\]]*)\]/m.exec(toml)?.[1] ?? "").matchAll(/"([^"]+)"/g),
    ].map((m) => m[1] as string);
    // The [vars] of the config (plain `KEY = "value"` lines), as wrangler would bind them.
    const vars: Record<string, string> = {};
    let inVars = false;
    for (const line of toml.split("\n")) {
      if (line.startsWith("[")) inVars = line.trim() === "[vars]";
      const m = inVars ? /^(\w+)\s*=\s*"([^"]*)"/.exec(line) : null;
      if (m) vars[m[1] as string] = m[2] as string;
    }
    // The dry run writes the entry under its own name (src/index.ts -> index.js).
    const entry = `${(/^main\s*=\s*"([^"]+)"/m.exec(toml)?.[1] ?? "index.ts").replace(/^.*\//, "").replace(/\.[cm]?[jt]s$/, "")}.js`;
    // Every Durable Object binding of the config (LIMITS, and STREAMS: the stream owners).
    const objects = Object.fromEntries(
      [
        ...toml.matchAll(
          /\[\[durable_objects\.bindings\]\]\s*name\s*=\s*"(\w+)"\s*class_name\s*=\s*"(\w+)"/g,
        ),
      ].map((m) => [m[1] as string, { className: m[2] as string, useSQLite: true }]),
    );
    const { Miniflare } = createRequire(join(o.root, "package.json"))("miniflare") as {
      Miniflare: new (options: unknown) => LocalRuntime;
    };
    const mf = new Miniflare({
      modules: true,
      modulesRoot: outdir,
      // The config's module rules the bundle keeps as separate modules (the Lua scripts, as text).
      modulesRules: [{ type: "Text", include: ["**/*.lua"], fallthrough: true }],
      scriptPath: join(outdir, entry),
      compatibilityDate: date,
      compatibilityFlags: flags,
      bindings: { ...vars, ...o.vars },
      ...(Object.keys(objects).length > 0
        ? {
            durableObjects: objects,
            durableObjectsPersist: join(o.persist, "do"),
          }
        : {}),
      // The ledger's D1 and Queue, as wrangler.toml declares them (the consumer is this Worker).
      ...(toml.includes("[[d1_databases]]")
        ? {
            d1Databases: { LEDGER_DB: "ledger" },
            d1Persist: join(o.persist, "d1"),
            queueProducers: { LEDGER_QUEUE: { queueName: "magic-ledger" } },
            queueConsumers: { "magic-ledger": { maxBatchSize: 100, maxBatchTimeout: 2 } },
          }
        : {}),
      host: "127.0.0.1",
      port: o.port,
      inspectorPort: o.inspectorPort,
    });
    const url = await mf.ready;
    if (toml.includes("[[d1_databases]]")) await migrateLedger(mf, o.root);
    close = () => mf.dispose();
    console.log(JSON.stringify({ url: url.href.replace(/\/$/, "") }));
  } else {
    throw new Error(`unknown server ${mode}`);
  }
  const stop = () => {
    void close().finally(() => process.exit(0));
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

/** The part of a Miniflare instance this script uses. */
interface LocalRuntime {
  ready: Promise<URL>;
  dispose(): Promise<void>;
  getD1Database(name: string): Promise<{ exec(sql: string): Promise<unknown> }>;
}

/** Applies migrations/*.sql to the fresh local D1 (D1's exec wants one statement line). */
async function migrateLedger(mf: LocalRuntime, root: string): Promise<void> {
  const db = await mf.getD1Database("LEDGER_DB");
  const dir = join(root, "migrations");
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .sort()) {
    const sql = readFileSync(join(dir, file), "utf8");
    await db.exec(sql.replace(/--[^\n]*\n/g, "").replace(/\s*\n\s*/g, " "));
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
