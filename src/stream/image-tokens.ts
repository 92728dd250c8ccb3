/**
 * @module The most input tokens one image can be billed as, per model family and `detail`. Each
 * formula is the provider's published one, taken at its worst case, so a hold stays an upper bound.
 *
 * - OpenAI tiles (gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o1, o3, ...): `low`: base. `high`/`auto`: the
 *   image is scaled down to fit 2048x2048, then down so its shortest side is at most 768 (never
 *   up); tokens = base + per_tile x ceil(w/512) x ceil(h/512). Base 85 and 170 a tile; gpt-4o-mini
 *   2833 and 5667. The largest image is 768x2048: 8 tiles (1445 tokens; gpt-4o-mini 48169).
 * - OpenAI patches (gpt-4.1-mini/nano, o4-mini, gpt-5-mini/nano): 32-pixel patches, at most 1536
 *   after scaling, times the model's multiplier (at most 2.46): min(1536, ceil(w/32) x ceil(h/32))
 *   x 2.46, whatever the `detail`.
 * - Anthropic: w x h / 750 after scaling to at most 1568 pixels a side (about 1600 tokens); newer
 *   models accept larger images, so the bound is min(ceil(w x h / 750), 4800).
 * - Any other model: the largest of all the formulas above.
 * An image of unknown size (an `https:` URL) is taken at the largest size each formula allows.
 */
import type { ProviderType } from "./registry";

export type Detail = "low" | "high" | "auto";
export interface ImageSize {
  width: number;
  height: number;
}

const TILE_MAX_SIDE = 2048;
const TILE_SHORT_SIDE = 768;
const MAX_PATCHES = 1536;
const PATCH_MULTIPLIER = 2.46;
const ANTHROPIC_MAX_TOKENS = 4800;

/** Tiles of 512 after OpenAI's scaling; an unknown size takes the most (768x2048: 8). */
export function tiles(size: ImageSize | null): number {
  if (!size) return 8;
  let { width: w, height: h } = size;
  const fit = Math.min(1, TILE_MAX_SIDE / Math.max(w, h));
  w *= fit;
  h *= fit;
  const shrink = Math.min(1, TILE_SHORT_SIDE / Math.min(w, h));
  w *= shrink;
  h *= shrink;
  // Rounded up: a side a hair over a multiple of 512 counts its extra tile.
  return Math.max(1, Math.ceil(Math.ceil(w) / 512)) * Math.max(1, Math.ceil(Math.ceil(h) / 512));
}

function tileTokens(base: number, perTile: number, detail: Detail, size: ImageSize | null) {
  return detail === "low" ? base : base + perTile * tiles(size);
}

function patchTokens(size: ImageSize | null): number {
  const patches = size
    ? Math.min(MAX_PATCHES, Math.ceil(size.width / 32) * Math.ceil(size.height / 32))
    : MAX_PATCHES;
  return Math.ceil(patches * PATCH_MULTIPLIER);
}

function anthropicTokens(size: ImageSize | null): number {
  return size
    ? Math.min(ANTHROPIC_MAX_TOKENS, Math.ceil((size.width * size.height) / 750))
    : ANTHROPIC_MAX_TOKENS;
}

const MINI = /^gpt-4o-mini/;
const PATCHES = /^(gpt-4\.1-(mini|nano)|o4-mini|gpt-5(\.\d+)?-(mini|nano))/;
const TILES = /^(gpt-4o|gpt-4-turbo|gpt-4\.1|gpt-4\.5|gpt-5|o1|o3|chatgpt-4o)/;

/** The most input tokens one image can be billed as by `model` (its name at its provider). */
export function imageTokensUpperBound(
  type: ProviderType,
  model: string,
  detail: Detail,
  size: ImageSize | null,
): number {
  if (type === "anthropic") return anthropicTokens(size);
  const name = model.replace(/^openai\//, "");
  if (MINI.test(name)) return tileTokens(2833, 5667, detail, size);
  if (PATCHES.test(name)) return patchTokens(size);
  if (TILES.test(name)) return tileTokens(85, 170, detail, size);
  return Math.max(tileTokens(2833, 5667, detail, size), patchTokens(size), anthropicTokens(size));
}
