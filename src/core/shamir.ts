/**
 * Shamir secret sharing (Shamir 1979, "How to share a secret") over GF(2^8), byte by byte: the
 * manager's root key can be split among operators so that any `threshold` of them can unseal it
 * and fewer learn nothing at all (information-theoretic, not computational).
 *
 * Field: GF(2^8) with the AES reduction polynomial x^8 + x^4 + x^3 + x + 1 (0x11b, FIPS-197 §4.2).
 * Arithmetic is TABLE-FREE: multiplication is a fixed 8-round shift-and-add with masks instead of
 * branches, and inversion is a^254 by a fixed square-and-multiply chain, so no secret-indexed memory
 * access happens (log/exp tables would leak through the cache). JavaScript gives no hard
 * constant-time guarantee; this is "constant-time-ish" by construction.
 *
 * Share encoding (SPEC.md, operator shares):
 *   u8 version = 1 ‖ u8 threshold (2..255) ‖ u8 x (1..255) ‖ y bytes (same length as the secret)
 * where y[k] = f_k(x) and f_k is a random polynomial of degree threshold−1 with f_k(0) = secret[k].
 * Shares are numbered x = 1..n. Text form for operators: "bf-share-" ‖ base64url(share), no padding.
 *
 * Shares are NOT authenticated: a wrong share yields a wrong secret without an error. The caller
 * must check the result (the sealer's root key id does: manager/seal.ts). When more than
 * `threshold` shares are given, combine() checks that the extra ones lie on the same polynomial.
 */
import { fromB64u, toB64u, zeroize } from './bytes.ts';
import { BlindfoldError, decodeError } from './errors.ts';
import { type Rng, systemRng } from './random.ts';

export const SHARE_VERSION = 1;
export const SHARE_TEXT_PREFIX = 'bf-share-';
const HEADER = 3;

/** Multiplication in GF(2^8) mod 0x11b, without tables or data-dependent branches. */
export function gfMul(a: number, b: number): number {
  let p = 0;
  let x = a & 0xff;
  let y = b & 0xff;
  for (let i = 0; i < 8; i++) {
    p ^= -(y & 1) & x; // add x when the low bit of y is set
    const carry = -((x >> 7) & 1);
    x = ((x << 1) ^ (carry & 0x1b)) & 0xff; // multiply x by the generator "x", reducing by 0x11b
    y >>= 1;
  }
  return p;
}

/** Multiplicative inverse a^254 = a^(2+4+…+128) (Fermat: a^255 = 1); maps 0 to 0. */
export function gfInv(a: number): number {
  let sq = a & 0xff;
  let r = 1;
  for (let i = 0; i < 7; i++) {
    sq = gfMul(sq, sq);
    r = gfMul(r, sq);
  }
  return r;
}

/**
 * Splits `secret` into `shares` shares of which any `threshold` reconstruct it (x = 1..shares).
 * All randomness (threshold−1 coefficients per byte) comes from `rng`.
 */
export function split(
  secret: Uint8Array,
  threshold: number,
  shares: number,
  rng: Rng = systemRng,
): Uint8Array[] {
  if (!(secret instanceof Uint8Array) || secret.length === 0) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'the secret must be a non-empty byte string');
  }
  if (!Number.isInteger(threshold) || threshold < 2 || threshold > 255) {
    // threshold 1 would hand the secret itself to every holder.
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'threshold must be an integer in 2..255');
  }
  if (!Number.isInteger(shares) || shares < threshold || shares > 255) {
    throw new BlindfoldError(
      'ERR_INVALID_ARGUMENT',
      `shares must be an integer in ${threshold}..255`,
    );
  }
  const len = secret.length;
  // coeffs[(j−1)·len + k] is the coefficient of x^j in f_k, j = 1..threshold−1.
  const coeffs = rng((threshold - 1) * len);
  const out: Uint8Array[] = [];
  for (let x = 1; x <= shares; x++) {
    const share = new Uint8Array(HEADER + len);
    share[0] = SHARE_VERSION;
    share[1] = threshold;
    share[2] = x;
    for (let k = 0; k < len; k++) {
      // Horner: f_k(x) = (…(c_{t−1}·x + c_{t−2})·x + …)·x + secret[k]
      let y = 0;
      for (let j = threshold - 1; j >= 1; j--) y = gfMul(y, x) ^ coeffs[(j - 1) * len + k]!;
      share[HEADER + k] = gfMul(y, x) ^ secret[k]!;
    }
    out.push(share);
  }
  zeroize(coeffs);
  return out;
}

interface Parsed {
  threshold: number;
  x: number;
  y: Uint8Array;
}

function parseShare(s: Uint8Array | string, i: number): Parsed {
  const b = typeof s === 'string' ? decodeShareText(s) : s;
  if (!(b instanceof Uint8Array))
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', `share ${i + 1} is not bytes`);
  if (b.length < HEADER + 1) throw decodeError('share', `share ${i + 1} is too short`);
  if (b[0] !== SHARE_VERSION) {
    throw new BlindfoldError(
      'ERR_UNSUPPORTED_VERSION',
      `share ${i + 1} has unknown version ${b[0]}`,
    );
  }
  if (b[1]! < 2) throw decodeError('share', `share ${i + 1} has threshold ${b[1]}`);
  if (b[2] === 0) throw decodeError('share', `share ${i + 1} has x = 0`);
  return { threshold: b[1]!, x: b[2]!, y: b.subarray(HEADER) };
}

/** Lagrange interpolation at `at` through the given points, byte by byte (all y of one length). */
function interpolate(points: Parsed[], at: number): Uint8Array {
  const len = points[0]!.y.length;
  const out = new Uint8Array(len);
  for (let i = 0; i < points.length; i++) {
    // ℓ_i(at) = Π_{j≠i} (at − x_j) / (x_i − x_j); minus is XOR in characteristic 2.
    let num = 1;
    let den = 1;
    for (let j = 0; j < points.length; j++) {
      if (j === i) continue;
      num = gfMul(num, at ^ points[j]!.x);
      den = gfMul(den, points[i]!.x ^ points[j]!.x);
    }
    const li = gfMul(num, gfInv(den));
    const yi = points[i]!.y;
    for (let k = 0; k < len; k++) out[k]! ^= gfMul(li, yi[k]!);
  }
  return out;
}

/**
 * Reconstructs the secret from at least `threshold` shares (bytes or text form, any order).
 * Structural problems are ERR_DECODE / ERR_UNSUPPORTED_VERSION; shares that do not belong together
 * (different thresholds or lengths, repeated x, too few, or extra shares off the polynomial) are
 * ERR_INVALID_ARGUMENT.
 */
export function combine(shares: (Uint8Array | string)[]): Uint8Array {
  if (!Array.isArray(shares) || shares.length === 0) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'no shares given');
  }
  const parsed = shares.map(parseShare);
  const { threshold, y } = parsed[0]!;
  const seen = new Set<number>();
  for (const p of parsed) {
    if (p.threshold !== threshold) {
      throw new BlindfoldError(
        'ERR_INVALID_ARGUMENT',
        'the shares disagree on the threshold: they come from different splits',
      );
    }
    if (p.y.length !== y.length) {
      throw new BlindfoldError(
        'ERR_INVALID_ARGUMENT',
        'the shares have different lengths: they come from different splits',
      );
    }
    if (seen.has(p.x))
      throw new BlindfoldError('ERR_INVALID_ARGUMENT', `share number ${p.x} was given twice`);
    seen.add(p.x);
  }
  if (parsed.length < threshold) {
    throw new BlindfoldError(
      'ERR_INVALID_ARGUMENT',
      `${threshold} shares are needed, ${parsed.length} given`,
    );
  }
  const basis = parsed.slice(0, threshold);
  for (const extra of parsed.slice(threshold)) {
    const expect = interpolate(basis, extra.x);
    let d = 0;
    for (let k = 0; k < expect.length; k++) d |= expect[k]! ^ extra.y[k]!;
    zeroize(expect);
    if (d !== 0) {
      throw new BlindfoldError(
        'ERR_INVALID_ARGUMENT',
        'the shares are inconsistent: one is wrong or from another split',
      );
    }
  }
  return interpolate(basis, 0);
}

/** "bf-share-" ‖ base64url(share). */
export function encodeShareText(share: Uint8Array): string {
  return SHARE_TEXT_PREFIX + toB64u(share);
}

/** Inverse of encodeShareText; surrounding whitespace is ignored (shares get pasted). */
export function decodeShareText(text: string): Uint8Array {
  if (typeof text !== 'string') throw decodeError('share', 'not a string');
  const t = text.trim();
  if (!t.startsWith(SHARE_TEXT_PREFIX))
    throw decodeError('share', `text must start with "${SHARE_TEXT_PREFIX}"`);
  return fromB64u(t.slice(SHARE_TEXT_PREFIX.length), 'share');
}
