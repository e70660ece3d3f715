/**
 * What the three integer schemes (Paillier, RSA, Goldwasser–Micali) share: modulus checks, prime
 * pairs, fixed-length integer encodings, seed expansion and item-secret bytes (SPEC.md §3.3).
 *
 * Encoding rules (SPEC.md §3.3):
 *   - an integer that lives modulo m is written big-endian in exactly byteLength(m) bytes;
 *   - a public modulus is u16be(len) ‖ n with no leading zero byte (len = byteLength(n));
 *   - a secret key is lp16(p) ‖ lp16(q), p > q, each minimal big-endian (no leading zero byte).
 * Keys carry no scheme byte: the envelope that stores them adds it (SPEC.md §2.2).
 */

import {
  bitLength,
  byteLength,
  gcd,
  generatePrime,
  isPerfectSquare,
  randomBelow,
  smallFactor,
} from '../bigint.ts';
import { bigToBytes, bytesToBig, concat, lp16, readU16be, u8, utf8 } from '../bytes.ts';
import { BlindfoldError, decodeError, decryptFailed } from '../errors.ts';
import { deriveKey, sha256 } from '../hash.ts';
import { type Rng, systemRng } from '../random.ts';

/** SPEC.md §3.3: no integer scheme accepts a modulus below 2048 bits. */
export const MIN_MODULUS_BITS = 2048;
/** An upper bound so that a hostile public key cannot make us exponentiate for minutes. */
export const MAX_MODULUS_BITS = 8192;

/**
 * Keygen options of the integer schemes (the registry interface's options). `generatePrime` lets
 * the Node side substitute OpenSSL (src/platform/node-primes.ts); primes it returns without their
 * two top bits set are discarded.
 */
export interface IntegerKeygenOptions {
  bits?: number;
  rng?: Rng;
  generatePrime?: (bits: number) => bigint;
}

/**
 * Secret plaintexts (masters M) and item shares Q of Paillier and RSA are integers below 2^256
 * (SPEC.md §3.3), so that M + Q and M · Q are below 2^512 < n and the item secret is the same
 * integer under every appliance's modulus. Blindings and unknowns still range over all of Z_n.
 */
export const SECRET_BITS = 256;
export const SECRET_BYTES = 32;
/** Bytes of the item secret S = M ⊛ Q of Paillier and RSA: 512 bits, big-endian. */
export const ITEM_SECRET_BYTES = 64;
const SECRET_BOUND = 1n << BigInt(SECRET_BITS);
const ITEM_SECRET_BOUND = 1n << BigInt(ITEM_SECRET_BYTES * 8);

export function checkKeygenBits(bits: number): void {
  if (
    !Number.isInteger(bits) ||
    bits % 2 !== 0 ||
    bits < MIN_MODULUS_BITS ||
    bits > MAX_MODULUS_BITS
  ) {
    throw new BlindfoldError(
      'ERR_PARAMS',
      `modulus size must be an even number of bits in [${MIN_MODULUS_BITS}, ${MAX_MODULUS_BITS}]`,
    );
  }
}

/**
 * Two distinct primes p > q of bits/2 bits each with their two top bits set, so that n = p·q has
 * exactly `bits` bits, both passing `accept` (RSA: gcd(e, p − 1) = 1). With p and q of equal size,
 * gcd(n, (p − 1)(q − 1)) = 1 holds automatically (Paillier needs it).
 */
export function generatePrimePair(
  opts: IntegerKeygenOptions | undefined,
  accept: (p: bigint) => boolean = () => true,
): { p: bigint; q: bigint; bits: number } {
  const bits = opts?.bits ?? MIN_MODULUS_BITS;
  checkKeygenBits(bits);
  const half = bits / 2;
  const rng = opts?.rng ?? systemRng;
  const gen = opts?.generatePrime ?? ((b: number) => generatePrime(b, rng));
  const next = (): bigint => {
    for (let i = 0; i < 1000; i++) {
      const p = gen(half);
      // Top two bits set (and the right size); an injected generator only guarantees the top one.
      if (p >> BigInt(half - 2) === 3n && (p & 1n) === 1n && accept(p)) return p;
    }
    throw new BlindfoldError('ERR_INTERNAL', 'prime generator keeps returning unusable primes');
  };
  for (;;) {
    const a = next();
    const b = next();
    if (a === b) continue;
    const [p, q] = a > b ? [a, b] : [b, a];
    // FIPS 186-5 A.1.3 step 5.4: |p − q| > 2^(bits/2 − 100), so Fermat factoring is hopeless.
    if (p - q <= 1n << BigInt(half - 100)) continue;
    if (bitLength(p * q) !== bits) continue; // cannot happen with two top bits set; kept as a guard
    return { p, q, bits };
  }
}

/**
 * Public checks on a modulus (SPEC.md §3.3): size in [2048, 8192] bits, odd, not a perfect
 * square, no prime factor below 2^16. None of this proves n = p·q with p, q prime (nothing
 * public can), but it rejects the cheap degenerate moduli. All failures are ERR_PARAMS.
 */
export function checkModulus(n: bigint, what: string): void {
  const bits = bitLength(n);
  if (bits < MIN_MODULUS_BITS || bits > MAX_MODULUS_BITS) {
    throw new BlindfoldError('ERR_PARAMS', `${what}: modulus of ${bits} bits is not allowed`);
  }
  if ((n & 1n) === 0n) throw new BlindfoldError('ERR_PARAMS', `${what}: modulus is even`);
  if (isPerfectSquare(n)) {
    throw new BlindfoldError('ERR_PARAMS', `${what}: modulus is a perfect square`);
  }
  const f = smallFactor(n);
  if (f !== 0) throw new BlindfoldError('ERR_PARAMS', `${what}: modulus has the factor ${f}`);
}

/** u16be(len) ‖ n (SPEC.md §3.3). */
export function encodeModulus(n: bigint): Uint8Array {
  const len = byteLength(n);
  return concat(Uint8Array.of(len >>> 8, len & 0xff), bigToBytes(n, len));
}

/**
 * Reads u16be(len) ‖ n at offset 0 and returns n and the offset after it; shape problems are
 * ERR_DECODE, modulus problems ERR_PARAMS.
 */
export function decodeModulus(b: Uint8Array, what: string): { n: bigint; end: number } {
  if (!(b instanceof Uint8Array) || b.length < 2) throw decodeError(what, 'too short');
  const len = readU16be(b, 0);
  if (len === 0 || b.length < 2 + len) throw decodeError(what, 'truncated modulus');
  if (b[2] === 0) throw decodeError(what, 'modulus has a leading zero byte');
  const n = bytesToBig(b.subarray(2, 2 + len));
  checkModulus(n, what);
  return { n, end: 2 + len };
}

/** An integer modulo m, big-endian in exactly `len` bytes. */
export function encodeInt(x: bigint, len: number): Uint8Array {
  return bigToBytes(x, len);
}

/** Reads exactly `len` bytes as an integer; the caller checks its range. */
export function decodeFixed(b: Uint8Array, len: number, what: string): bigint {
  if (!(b instanceof Uint8Array) || b.length !== len) {
    throw decodeError(what, `expected ${len} bytes`);
  }
  return bytesToBig(b);
}

/** lp16(p) ‖ lp16(q), minimal big-endian (SPEC.md §3.3). */
export function encodeFactors(p: bigint, q: bigint): Uint8Array {
  return concat(lp16(bigToBytes(p, byteLength(p))), lp16(bigToBytes(q, byteLength(q))));
}

/**
 * Decodes lp16(p) ‖ lp16(q) and checks what the owner of a key can check cheaply: canonical
 * bytes, p > q (one encoding per key), both odd, of equal bit length, n = p·q of an allowed size.
 * Primality is not re-tested: a secret key only comes from our own sealed storage, whose AEAD is
 * what vouches for it.
 */
export function decodeFactors(b: Uint8Array, what: string): { p: bigint; q: bigint; n: bigint } {
  if (!(b instanceof Uint8Array)) throw decodeError(what, 'not bytes');
  const fields: bigint[] = [];
  let off = 0;
  for (let i = 0; i < 2; i++) {
    if (b.length < off + 2) throw decodeError(what, 'truncated');
    const len = readU16be(b, off);
    off += 2;
    if (len === 0 || b.length < off + len) throw decodeError(what, 'truncated');
    if (b[off] === 0) throw decodeError(what, 'factor has a leading zero byte');
    fields.push(bytesToBig(b.subarray(off, off + len)));
    off += len;
  }
  if (off !== b.length) throw decodeError(what, 'trailing bytes');
  const [p, q] = fields as [bigint, bigint];
  if (p === q) throw new BlindfoldError('ERR_PARAMS', `${what}: p = q`);
  if (p < q) throw decodeError(what, 'factors not in canonical order (p > q)');
  if ((p & 1n) === 0n || (q & 1n) === 0n || q < 3n) {
    throw new BlindfoldError('ERR_PARAMS', `${what}: factors must be odd primes`);
  }
  if (gcd(p, q) !== 1n) throw new BlindfoldError('ERR_PARAMS', `${what}: p and q share a factor`);
  if (bitLength(p) !== bitLength(q)) {
    throw new BlindfoldError('ERR_PARAMS', `${what}: factors of different sizes`);
  }
  const n = p * q;
  const bits = bitLength(n);
  if (bits < MIN_MODULUS_BITS || bits > MAX_MODULUS_BITS) {
    throw new BlindfoldError('ERR_PARAMS', `${what}: modulus of ${bits} bits is not allowed`);
  }
  return { p, q, n };
}

/** Throws ERR_INVALID_ARGUMENT unless x is a bigint in [lo, hi). */
export function checkRange(x: unknown, lo: bigint, hi: bigint, what: string): asserts x is bigint {
  if (typeof x !== 'bigint' || x < lo || x >= hi) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', `${what} out of range`);
  }
}

export function isUnit(x: bigint, n: bigint): boolean {
  return x > 0n && x < n && gcd(x, n) === 1n;
}

function checkSeed(seed: Uint8Array): void {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'seed must be 32 bytes');
  }
}

/**
 * SPEC.md §3.3 seed expansion, as for ec-elgamal (SPEC.md §3.2): attempt i derives
 * deriveKey(seed, label, ctx, len) with ctx empty for i = 0 and the byte i afterwards, until
 * `accept` takes it (it rejects only the neutral element, so in practice once).
 */
export function expandSeed<T>(
  seed: Uint8Array,
  label: string,
  len: number,
  map: (bytes: Uint8Array) => T,
  accept: (x: T) => boolean,
): T {
  checkSeed(seed);
  for (let i = 0; i < 256; i++) {
    const bytes = deriveKey(seed, label, i === 0 ? new Uint8Array(0) : u8(i), len);
    const x = map(bytes);
    bytes.fill(0);
    if (accept(x)) return x;
  }
  throw new BlindfoldError('ERR_INTERNAL', 'seed expansion failed 256 times');
}

/** A secret-sized integer (SPEC.md §3.3) from a seed: 32 derived bytes, never below `min`. */
export function secretFromSeed(seed: Uint8Array, label: string, min: bigint): bigint {
  return expandSeed(seed, label, SECRET_BYTES, bytesToBig, (x) => x >= min);
}

/** A uniform secret-sized integer in [min, 2^256). */
export function randomSecret(rng: Rng, min: bigint): bigint {
  for (;;) {
    const x = randomBelow(SECRET_BOUND, rng);
    if (x >= min) return x;
  }
}

/** Secret-sized values are those in [min, 2^256). */
export function isSecretSized(x: bigint, min: bigint): boolean {
  return x >= min && x < SECRET_BOUND;
}

/**
 * The item secret S = M ⊛ Q as 64 bytes big-endian (SPEC.md §3.3). A value ≥ 2^512 cannot come
 * from a secret-sized M and Q: it means a wrong or tampered answer, so it fails like a wrong key.
 */
export function itemSecretBytes(s: bigint): Uint8Array {
  if (s < 0n || s >= ITEM_SECRET_BOUND) throw decryptFailed();
  return bigToBytes(s, ITEM_SECRET_BYTES);
}

/** SHA-256("blindfold/v1/fingerprint/<id>" ‖ 0x00 ‖ public key encoding) (SPEC.md §3.3). */
export function fingerprintOf(id: string, pkEncoding: Uint8Array): Uint8Array {
  return sha256(utf8(`blindfold/v1/fingerprint/${id}`), u8(0), pkEncoding);
}

/**
 * A fresh 64-bit factor for exponent blinding in CRT decryption: d_p + k·(p − 1) (RSA) or
 * k·(p − 1) (Paillier) give the same result for every k, but a different window pattern in
 * `modPow` on every call, so that timing cannot be averaged over calls. Drawn from the system
 * CSPRNG, not the caller's rng: decryption results do not depend on it.
 */
export function exponentBlind(): bigint {
  return randomBelow(1n << 64n, systemRng) | 1n;
}
