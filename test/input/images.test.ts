/**
 * @module Images on the OpenAI surface: sizes read from the headers of real (tiny) PNG, JPEG,
 * GIF and WebP bytes, the token bound per model family, MAX_IMAGES, MAX_BODY_BYTES, and the
 * hold that covers images (a cap that pays for the text but not the image spends nothing).
 */
import { describe, expect, it } from "vitest";
import { dataUrlImageSize } from "../../src/input/image-size";
import { imageTokensUpperBound, tiles } from "../../src/stream/image-tokens";
import { testEnv } from "../helpers/app";
import {
  anonCaller,
  expectNothingSpent,
  fakeMessage,
  postAs,
  upstreamRecord,
  type Who,
} from "../helpers/gate";

const be16 = (n: number) => [(n >> 8) & 255, n & 255];
const le16 = (n: number) => [n & 255, (n >> 8) & 255];
const le24 = (n: number) => [n & 255, (n >> 8) & 255, (n >> 16) & 255];
const be32 = (n: number) => [...be16(Math.floor(n / 65536)), ...be16(n & 0xffff)];
const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));

/** The header bytes of each format for an image of w x h. */
const HEADERS = {
  png: (w: number, h: number) => [
    0x89,
    ...ascii("PNG\r\n"),
    0x1a,
    0x0a,
    ...be32(13),
    ...ascii("IHDR"),
    ...be32(w),
    ...be32(h),
    8,
    2,
    0,
    0,
    0,
    ...be32(0),
  ],
  gif: (w: number, h: number) => [...ascii("GIF89a"), ...le16(w), ...le16(h), 0, 0, 0],
  webp: (w: number, h: number) => [
    ...ascii("RIFF"),
    ...le24(22),
    0,
    ...ascii("WEBPVP8X"),
    ...le24(10),
    0,
    0,
    0,
    0,
    0,
    ...le24(w - 1),
    ...le24(h - 1),
  ],
  // A JFIF APP0 segment first, then the SOF0 with the size.
  jpeg: (w: number, h: number) => [
    0xff,
    0xd8,
    0xff,
    0xe0,
    ...be16(16),
    ...ascii("JFIF"),
    0,
    1,
    1,
    0,
    ...be16(1),
    ...be16(1),
    0,
    0,
    0xff,
    0xc0,
    ...be16(17),
    8,
    ...be16(h),
    ...be16(w),
    3,
    1,
    0x22,
    0,
    2,
    0x11,
    1,
    3,
    0x11,
    1,
    0xff,
    0xd9,
  ],
};

/** A data URL of the header of a w x h image, `pad` zero bytes after it (a body of that size). */
function dataUrl(type: keyof typeof HEADERS, w: number, h: number, pad = 0): string {
  const bytes = [...HEADERS[type](w, h)];
  let binary = String.fromCharCode(...bytes);
  binary += "\0".repeat(pad);
  return `data:image/${type};base64,${btoa(binary)}`;
}

const complete = (who: Who, body: unknown, bindings = testEnv()) =>
  postAs(who, "/v1/chat/completions", body, bindings);

const withImages = (message: string, urls: string[], detail?: string) => [
  {
    role: "user",
    content: [
      { type: "text", text: message },
      ...urls.map((url) => ({
        type: "image_url",
        image_url: { url, ...(detail ? { detail } : {}) },
      })),
    ],
  },
];

describe("image sizes and token bounds", () => {
  it.each(["png", "gif", "webp", "jpeg"] as const)("reads a %s's size from its header", (type) => {
    expect(dataUrlImageSize(dataUrl(type, 1234, 567))).toEqual({ width: 1234, height: 567 });
  });

  it("cannot read a header that lies about its type", () => {
    expect(dataUrlImageSize(dataUrl("png", 10, 10).replace("png", "gif"))).toBeNull();
  });

  it("follows OpenAI's tile formula at its worst case", () => {
    expect(tiles({ width: 1024, height: 1024 })).toBe(4); // 768x768 after scaling
    expect(tiles({ width: 4096, height: 8192 })).toBe(6); // 1024x2048, then 768x1536
    expect(tiles({ width: 128, height: 128 })).toBe(1); // never scaled up
    expect(tiles(null)).toBe(8); // 768x2048, the most
    expect(imageTokensUpperBound("openai", "gpt-4o", "low", null)).toBe(85);
    expect(imageTokensUpperBound("openai", "gpt-4o", "high", { width: 1024, height: 1024 })).toBe(
      765,
    );
    expect(imageTokensUpperBound("openai", "gpt-4o-mini", "auto", null)).toBe(2833 + 8 * 5667);
    expect(
      imageTokensUpperBound("anthropic", "claude-x", "auto", { width: 750, height: 100 }),
    ).toBe(100);
    // A model of unknown family: the largest of every formula.
    expect(imageTokensUpperBound("openai", "llama-3", "low", null)).toBeGreaterThanOrEqual(4800);
  });
});

describe("images on the OpenAI surface", () => {
  it("passes image parts to the upstream as they were sent", async () => {
    const who = await anonCaller();
    const { id, message } = fakeMessage({ tokens: 2 });
    const messages = withImages(
      message,
      [dataUrl("png", 64, 64), "https://example.com/a.jpg"],
      "low",
    );
    const { res, settled } = await complete(who, { model: "gpt-4o-mini", messages });
    expect(res.status).toBe(200);
    await settled();
    expect((await upstreamRecord(id))?.messages).toEqual(messages);
  });

  it("refuses more than MAX_IMAGES images, spending nothing", async () => {
    const who = await anonCaller();
    const { id, message } = fakeMessage();
    const url = dataUrl("gif", 8, 8);
    const bindings = testEnv({ MAX_IMAGES: "2" });
    const { res, settled } = await complete(
      who,
      { model: "gpt-4o-mini", messages: withImages(message, [url, url, url]) },
      bindings,
    );
    expect(res.status).toBe(400);
    const body = await res.json<{ error: { param: string; message: string } }>();
    expect(body.error.param).toBe("messages");
    expect(body.error.message).toContain("at most 2 images");
    await settled();
    expect(await upstreamRecord(id)).toBeNull();
    await expectNothingSpent(who, bindings);
  });

  it("takes bodies up to MAX_BODY_BYTES on this surface only", async () => {
    const who = await anonCaller();
    const { message } = fakeMessage({ tokens: 1 });
    const big = dataUrl("jpeg", 100, 100, 150_000); // about 200 KB of base64
    const body = { model: "gpt-4o-mini", messages: withImages(message, [big], "low") };
    const small = await complete(who, body);
    expect(small.res.status).toBe(413);
    await small.settled();
    const bindings = testEnv({ MAX_BODY_BYTES: String(1024 * 1024) });
    const raised = await complete(who, body, bindings);
    expect(raised.res.status).toBe(200);
    await raised.res.text();
    await raised.settled();
    const native = await postAs(who, "/api/v1/stream", { message: "x".repeat(70_000) }, bindings);
    expect(native.res.status).toBe(413);
    await native.settled();
  });

  it("holds each image at the most its model could charge: a cap that pays for the text but not the image refuses", async () => {
    const who = await anonCaller();
    const { id, message } = fakeMessage();
    // gpt-4o-mini: a 2048x768 PNG at high detail is 2833 + 8 x 5667 = 48169 tokens,
    // 7226 µUSD at $0.15 per million; the text alone is far below the 5000 µUSD cap.
    const cap = 0.005;
    const image = withImages(message, [dataUrl("png", 2048, 768)], "high");
    const refused = await complete(who, {
      model: "gpt-4o-mini",
      messages: image,
      cost_cap_usd: cap,
    });
    expect(refused.res.status).toBe(400);
    expect((await refused.res.json<{ error: { param: string } }>()).error.param).toBe(
      "cost_cap_usd",
    );
    await refused.settled();
    expect(await upstreamRecord(id)).toBeNull();
    await expectNothingSpent(who);
    // The same picture at low detail (2833 tokens) fits.
    const low = withImages(message, [dataUrl("png", 2048, 768)], "low");
    const ok = await complete(who, { model: "gpt-4o-mini", messages: low, cost_cap_usd: cap });
    expect(ok.res.status).toBe(200);
    await ok.res.text();
    await ok.settled();
  });
});
