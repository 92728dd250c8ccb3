/**
 * @module The HS256 keys as WebCrypto CryptoKeys, imported once per secret per isolate. jose
 * imports a raw `Uint8Array` secret again on every sign and verify; a CryptoKey skips that.
 */

const keys = new WeakMap<Uint8Array, Promise<CryptoKey>>();

/** The HMAC-SHA-256 key of `secret`, for signing and verifying; built once per secret. */
export function hmacKey(secret: Uint8Array): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", secret, { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
      "verify",
    ]);
    keys.set(secret, key);
    // A failed import is not kept: the next request tries again.
    key.catch(() => keys.delete(secret));
  }
  return key;
}
