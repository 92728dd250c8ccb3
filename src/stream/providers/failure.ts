/**
 * @module How an upstream refused before its first byte, in terms a route can act on: the HTTP
 * status (null: no answer at all), so it knows whether the next target may do better.
 */
import { AppError } from "../../errors";

/** An upstream that refused or could not be reached; `detail` never carries its own words. */
export class UpstreamFailure extends AppError {
  /** The upstream's HTTP status, or null when it never answered (refused, reset, timed out). */
  readonly upstreamStatus: number | null;

  constructor(
    upstreamStatus: number | null,
    options: { retryAfter?: number; cause?: unknown } = {},
  ) {
    const busy = upstreamStatus === 429;
    super(
      busy ? "upstream_busy" : "upstream_error",
      upstreamStatus === null
        ? "the model provider could not be reached"
        : busy
          ? "the model provider is busy; try again shortly"
          : "the model provider answered with an error",
      {
        cause: options.cause ?? new Error(`upstream status ${upstreamStatus}`),
        ...(busy ? { retryAfter: options.retryAfter ?? 10 } : {}),
      },
    );
    this.upstreamStatus = upstreamStatus;
  }

  /** Another target may answer: no answer, a timeout, a conflict, too many requests, a 5xx, a bad key. */
  get retryable(): boolean {
    const s = this.upstreamStatus;
    return s === null || s === 401 || s === 403 || s === 408 || s === 409 || s === 429 || s >= 500;
  }

  /** The key was refused or rate limited: skip it for a while. */
  get badKey(): boolean {
    const s = this.upstreamStatus;
    return s === 401 || s === 403 || s === 429;
  }
}

/** `Retry-After` in seconds, bounded; undefined when absent or not a number of seconds. */
export function retryAfterOf(res: Response): number | undefined {
  const retry = Number(res.headers.get("Retry-After"));
  return Number.isFinite(retry) && retry > 0 ? Math.min(retry, 300) : undefined;
}

/** Fetches, turning a network failure and any status but 2xx into an UpstreamFailure. */
export async function fetchUpstream(
  fetchImpl: typeof fetch,
  url: string,
  init: RequestInit,
): Promise<Response & { body: ReadableStream<Uint8Array> }> {
  let res: Response;
  try {
    res = await fetchImpl(url, init);
  } catch (cause) {
    throw new UpstreamFailure(null, { cause });
  }
  if (res.ok && res.body) return res as Response & { body: ReadableStream<Uint8Array> };
  await res.body?.cancel().catch(() => {});
  throw new UpstreamFailure(res.ok ? 502 : res.status, { retryAfter: retryAfterOf(res) });
}
