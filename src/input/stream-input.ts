/** @module The stream request's schema: one definition for GET query and POST JSON. */
import * as z from "zod";
import { DEFAULT_MODEL, MODEL_IDS } from "../stream/models";

/** Longest message, in Unicode code points. */
export const MAX_MESSAGE_CHARS = 8192;
/** Cost cap used when the request names none. */
export const DEFAULT_COST_CAP_USD = 0.5;
export const STREAM_ID = /^[A-Za-z0-9_-]{1,64}$/;

const message = z
  .string()
  .refine((s) => s.trim().length > 0, "must not be empty or only whitespace")
  .refine(
    (s) => [...s].length <= MAX_MESSAGE_CHARS,
    `must be at most ${MAX_MESSAGE_CHARS} characters`,
  );

function costCap(maxUsd: number, fromQuery: boolean) {
  const n = z
    .number()
    .finite()
    .gt(0, "must be greater than 0")
    .max(maxUsd, `must be at most ${maxUsd}`);
  // A query string has only strings; JSON must send a number.
  const field = fromQuery
    ? z
        .string()
        .regex(/^(\d{1,4}(\.\d{1,12})?|\.\d{1,12})$/, "must be a number")
        .transform(Number)
        .pipe(n)
    : n;
  return field.default(Math.min(DEFAULT_COST_CAP_USD, maxUsd));
}

/** The schema for a stream request, for the configured maximum cost cap. */
export function streamInputSchema(maxCostCapUsd: number, fromQuery: boolean) {
  return z.strictObject({
    message,
    model: z.enum(MODEL_IDS).default(DEFAULT_MODEL),
    stream_id: z.string().regex(STREAM_ID, "must match ^[A-Za-z0-9_-]{1,64}$").optional(),
    cost_cap_usd: costCap(maxCostCapUsd, fromQuery),
  });
}

/** A validated stream request. */
export type StreamInput = z.output<ReturnType<typeof streamInputSchema>>;
