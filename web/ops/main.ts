/** @module The operator page: asks for the tokens, then charts /api/v1/metrics and the ledger's spend. */
import "uplot/dist/uPlot.min.css";
import "./ops.css";
import {
  ApiError,
  clearTokens,
  fetchMetrics,
  fetchRecords,
  fetchSpend,
  loadTokens,
  saveTokens,
  type Tokens,
} from "./api";
import { drawLedger, drawMetrics, utcDay } from "./board";
import { drawRecords } from "./records";
import { createStatus } from "./status";

const REFRESH_MS = 15_000;
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = createStatus($("status"), $("announce"));

let timer: number | undefined;

/** Reads and draws everything; `asked`: a person asked for it (sign-in, Refresh). */
async function refresh(t: Tokens, asked: boolean): Promise<void> {
  const now = Date.now();
  const from = now - 29 * 86_400_000;
  const problems: string[] = [];
  const [metrics, ledger] = await Promise.allSettled([
    fetchMetrics(t),
    Promise.all([
      fetchSpend(t, utcDay(from), utcDay(now), "day"),
      fetchSpend(t, utcDay(now), utcDay(now), "user", 10),
    ]),
  ]);
  if (metrics.status === "fulfilled") drawMetrics(metrics.value);
  else
    problems.push(metrics.reason instanceof ApiError ? metrics.reason.message : "metrics failed");
  if (ledger.status === "fulfilled") {
    drawLedger(ledger.value[0], from, ledger.value[1]);
    // The top spender's latest streams: who answered them (provider, upstream model).
    const top = ledger.value[1][0]?.user ?? null;
    try {
      drawRecords(top, top ? await fetchRecords(t, top) : []);
    } catch (e) {
      problems.push(e instanceof ApiError ? e.message : "ledger records failed");
    }
  } else problems.push(ledger.reason instanceof ApiError ? ledger.reason.message : "ledger failed");
  document.body.dataset.loaded = String(Date.now());
  if (problems.length) status.failed(problems);
  else status.updated(metrics.status === "fulfilled" ? metrics.value.store : "?", asked);
}

/** Shows the board; `signedIn`: the tokens were just typed, so focus moves to what appeared. */
function start(t: Tokens, signedIn: boolean): void {
  $("login").hidden = true;
  $("board").hidden = false;
  $("board-tools").hidden = false;
  // The form that had focus is gone: without this, focus would fall to <body>.
  if (signedIn) $("board").focus();
  void refresh(t, signedIn);
  window.clearInterval(timer);
  timer = window.setInterval(() => {
    if (($("auto") as HTMLInputElement).checked && !document.hidden) void refresh(t, false);
  }, REFRESH_MS);
  $("refresh").onclick = () => void refresh(t, true);
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  const metrics = ($("metrics-token") as HTMLInputElement).value.trim();
  const admin = ($("admin-token") as HTMLInputElement).value.trim() || metrics;
  if (!metrics) return;
  const t = { metrics, admin };
  saveTokens(t);
  start(t, true);
});
$("forget").addEventListener("click", () => {
  clearTokens();
  window.clearInterval(timer);
  location.reload();
});

const saved = loadTokens();
if (saved) start(saved, false);
