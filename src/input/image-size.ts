/**
 * @module An image's size from the first bytes of a `data:` URL: PNG's IHDR, GIF's logical
 * screen, WebP's VP8/VP8L/VP8X header, JPEG's first SOF marker. Only the header is decoded, never
 * the image.
 */
import type { ImageSize } from "../stream/image-tokens";

/** The media types a data URL may carry. */
export const DATA_URL = /^data:image\/(png|jpeg|gif|webp);base64,/;

/** Base64 characters decoded at most: JPEG's SOF may follow EXIF and other segments. */
const MAX_HEADER_CHARS = 256 * 1024;

/** The first bytes of a base64 payload (whole 4-character groups only), or null if not base64. */
function headBytes(base64: string): Uint8Array | null {
  const head = base64.slice(0, Math.min(base64.length, MAX_HEADER_CHARS) & ~3);
  try {
    return Uint8Array.from(atob(head), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

const u16be = (b: Uint8Array, i: number) => ((b[i] ?? 0) << 8) | (b[i + 1] ?? 0);
const u16le = (b: Uint8Array, i: number) => (b[i] ?? 0) | ((b[i + 1] ?? 0) << 8);
const u24le = (b: Uint8Array, i: number) => u16le(b, i) | ((b[i + 2] ?? 0) << 16);
const u32be = (b: Uint8Array, i: number) => u16be(b, i) * 65536 + u16be(b, i + 2);
const ascii = (b: Uint8Array, i: number, n: number) => String.fromCharCode(...b.subarray(i, i + n));

function png(b: Uint8Array): ImageSize | null {
  if (b.length < 24 || ascii(b, 1, 3) !== "PNG" || ascii(b, 12, 4) !== "IHDR") return null;
  return { width: u32be(b, 16), height: u32be(b, 20) };
}

function gif(b: Uint8Array): ImageSize | null {
  if (b.length < 10 || ascii(b, 0, 4) !== "GIF8") return null;
  return { width: u16le(b, 6), height: u16le(b, 8) };
}

function webp(b: Uint8Array): ImageSize | null {
  if (b.length < 30 || ascii(b, 0, 4) !== "RIFF" || ascii(b, 8, 4) !== "WEBP") return null;
  const chunk = ascii(b, 12, 4);
  if (chunk === "VP8X") return { width: u24le(b, 24) + 1, height: u24le(b, 27) + 1 };
  if (chunk === "VP8L") {
    const bits = (b[21] ?? 0) | ((b[22] ?? 0) << 8) | ((b[23] ?? 0) << 16) | ((b[24] ?? 0) << 24);
    return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  if (chunk === "VP8 ") return { width: u16le(b, 26) & 0x3fff, height: u16le(b, 28) & 0x3fff };
  return null;
}

/** SOF0-SOF15 but DHT (C4), JPG (C8) and DAC (CC) carry the frame's size. */
const isSof = (m: number) => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;

function jpeg(b: Uint8Array): ImageSize | null {
  if (b[0] !== 0xff || b[1] !== 0xd8) return null;
  let i = 2;
  while (i + 9 < b.length) {
    if (b[i] !== 0xff) return null;
    const marker = b[i + 1] ?? 0;
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    if (isSof(marker)) return { width: u16be(b, i + 7), height: u16be(b, i + 5) };
    i += 2 + u16be(b, i + 2);
  }
  return null;
}

/**
 * The size of the image in a data URL, from its header, or null when the header cannot be read
 * (the image is then held at the largest size its model accepts, like an `https:` URL).
 */
export function dataUrlImageSize(url: string): ImageSize | null {
  const type = DATA_URL.exec(url)?.[1];
  if (!type) return null;
  const bytes = headBytes(url.slice(url.indexOf(",") + 1));
  if (!bytes) return null;
  const size =
    type === "png"
      ? png(bytes)
      : type === "gif"
        ? gif(bytes)
        : type === "webp"
          ? webp(bytes)
          : jpeg(bytes);
  return size && size.width > 0 && size.height > 0 ? size : null;
}
