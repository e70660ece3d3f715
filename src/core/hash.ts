/**
 * SHA-2, HMAC and HKDF over libsodium, so that the core runs unchanged in browsers.
 * HKDF is RFC 5869; test/rfc5869.test.ts runs its SHA-256 vectors.
 */
import { concat, utf8 } from './bytes.ts';
import { BlindfoldError } from './errors.ts';
import { sodium } from './sodium.ts';

export function sha256(...parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return sodium.crypto_hash_sha256(parts[0]!);
  const st = sodium.crypto_hash_sha256_init();
  for (const p of parts) sodium.crypto_hash_sha256_update(st, p);
  return sodium.crypto_hash_sha256_final(st);
}

export function sha512(...parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return sodium.crypto_hash_sha512(parts[0]!);
  const st = sodium.crypto_hash_sha512_init();
  for (const p of parts) sodium.crypto_hash_sha512_update(st, p);
  return sodium.crypto_hash_sha512_final(st);
}

/** HMAC-SHA256 with a key of any length (RFC 2104). */
export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const st = sodium.crypto_auth_hmacsha256_init(key);
  for (const p of parts) sodium.crypto_auth_hmacsha256_update(st, p);
  return sodium.crypto_auth_hmacsha256_final(st);
}

/** RFC 5869 §2.2 HKDF-Extract. An empty salt means HashLen zero bytes. */
export function hkdfExtract(salt: Uint8Array, ikm: Uint8Array): Uint8Array {
  return hmacSha256(salt.length === 0 ? new Uint8Array(32) : salt, ikm);
}

/** RFC 5869 §2.3 HKDF-Expand. */
export function hkdfExpand(prk: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 1 || length > 255 * 32) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'HKDF output length must be 1 to 8160 bytes');
  }
  const out = new Uint8Array(length);
  let t: Uint8Array = new Uint8Array(0);
  for (let i = 1, o = 0; o < length; i++) {
    t = hmacSha256(prk, t, info, Uint8Array.of(i));
    out.set(t.subarray(0, Math.min(32, length - o)), o);
    o += 32;
  }
  return out;
}

export function hkdf(
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array,
  length: number,
): Uint8Array {
  const prk = hkdfExtract(salt, ikm);
  const out = hkdfExpand(prk, info, length);
  prk.fill(0);
  return out;
}

/**
 * Blindfold's labelled KDF (SPEC.md §2.3): HKDF-SHA256 with info = "blindfold/v1/" ‖ label ‖ 0x00 ‖
 * context. Every derived key in the system names its purpose in its label, so that no two uses
 * of one secret can collide.
 */
export function deriveKey(
  ikm: Uint8Array,
  label: string,
  context: Uint8Array = new Uint8Array(0),
  length = 32,
  salt: Uint8Array = new Uint8Array(0),
): Uint8Array {
  return hkdf(ikm, salt, concat(utf8(`blindfold/v1/${label}`), Uint8Array.of(0), context), length);
}
