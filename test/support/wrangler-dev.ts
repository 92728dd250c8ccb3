/** @module The `wrangler dev` command line and environment shared by the browser tests and the bench. */

/** Environment that stops every call home (metrics, error reports, the Request.cf fetch) and colour. */
export const OFFLINE_WRANGLER_ENV = {
  WRANGLER_SEND_METRICS: "false",
  WRANGLER_SEND_ERROR_REPORTS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  CI: "true",
  NO_COLOR: "1",
} as const;

/** `dev` and its options: loopback, the given ports, fresh state in `persist`, vars as `--var`. */
export function wranglerDevArgs(o: {
  port: number;
  inspectorPort: number;
  persist: string;
  vars: Record<string, string>;
  config?: string;
}): string[] {
  return [
    "dev",
    ...(o.config ? ["-c", o.config] : []),
    "--ip",
    "127.0.0.1",
    "--port",
    String(o.port),
    "--inspector-port",
    String(o.inspectorPort),
    "--persist-to",
    o.persist,
    "--show-interactive-dev-session=false",
    ...Object.entries(o.vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
  ];
}
