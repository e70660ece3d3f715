/**
 * The prime-order group ristretto255 (RFC 9496) over libsodium, and its scalar field Z_ℓ.
 *
 * Points and scalars are 32-byte Uint8Arrays, branded so that the type checker keeps unchecked
 * bytes out: a `Point` only comes from `decodePoint` or from the group operations below, so it is
 * always a canonical encoding; a `Scalar` is always canonical (< ℓ, little-endian).
 *
 * A ristretto255 encoding is canonical by construction (RFC 9496 §4.3.2: exactly one encoding
 * per group element), so equality of points is equality of their encodings (§4.3.3) and the
 * identity is exactly the all-zero string.
 *
 * libsodium behaviours this module relies on (checked in test/group.property.test.ts and
 * test/rfc9496.test.ts, libsodium-wrappers-sumo 0.8.4):
 *   - crypto_core_ristretto255_is_valid_point implements RFC 9496 §4.3.1 Decode: it rejects every
 *     non-canonical encoding (s ≥ p, the top bit set, s negative, and the other §A.2 cases) but
 *     ACCEPTS the identity (all zeros). `decodePoint` therefore rejects the identity itself.
 *   - crypto_core_ristretto255_add / _sub throw on an invalid encoding and happily return the
 *     identity (all zeros) when the result is the identity.
 *   - crypto_scalarmult_ristretto255 and _base return an error (the JS wrapper throws, with the
 *     message "result is identity element" / "scalar is 0") whenever the result is the identity:
 *     a zero scalar (mod ℓ), the identity as input point, and ALSO an invalid input encoding. We
 *     map it to ERR_IDENTITY, which is only correct because a `Point` is always valid.
 *   - both scalar multiplications clear bit 255 of the scalar before use (scalar mod 2^255, not
 *     mod ℓ); our scalars are always < ℓ < 2^253, so this never bites.
 *   - crypto_core_ristretto255_from_hash (RFC 9496 §4.3.4) maps the all-zero input to the
 *     identity, so a hash or random bytes CAN land on the identity (with probability ~2^-252 for
 *     uniform input); `randomPoint` retries.
 *   - crypto_core_ristretto255_scalar_invert throws on zero; scalar_reduce wants exactly 64 bytes.
 */
import { concat, equalBytes, zeroize } from './bytes.ts';
import { BlindfoldError, decodeError } from './errors.ts';
import { type Rng, systemRng } from './random.ts';
import { sodium } from './sodium.ts';

declare const pointBrand: unique symbol;
declare const scalarBrand: unique symbol;

/** A ristretto255 group element, as its canonical 32-byte encoding (RFC 9496 §4.3.2). */
export type Point = Uint8Array & { readonly [pointBrand]: true };
/** An element of Z_ℓ, as 32 little-endian bytes, always < ℓ. */
export type Scalar = Uint8Array & { readonly [scalarBrand]: true };

export const POINT_BYTES = 32;
export const SCALAR_BYTES = 32;
/** Input length of `scalarFromWide` and `pointFromUniform`: 512 bits (reduction bias ≤ 2^-259). */
export const WIDE_BYTES = 64;

/** The group order ℓ = 2^252 + 27742317777372353535851937790883648493 (RFC 9496 §4.4). */
export const L: bigint = 2n ** 252n + 27742317777372353535851937790883648493n;

/** The identity element; its encoding is 32 zero bytes (RFC 9496 §4.3.2 with s = 0). */
export const IDENTITY: Point = new Uint8Array(POINT_BYTES) as Point;

/** The generator B: the edwards25519 base point (RFC 9496 §4); its encoding is [1]B of App. A.1. */
export const BASE: Point = sodium.crypto_scalarmult_ristretto255_base(
  scalarFromBigInt(1n),
) as Point;

const ZERO32 = new Uint8Array(32);

// ---------------------------------------------------------------------------------------------
// Points
// ---------------------------------------------------------------------------------------------

/**
 * RFC 9496 §4.3.1 Decode, plus Blindfold's rule that no encoded point may be the identity
 * (SPEC.md §2: "every point in every encoding MUST be canonical and MUST NOT be the identity").
 * Wrong length and non-canonical or off-group encodings: ERR_DECODE. The identity: ERR_IDENTITY.
 */
export function decodePoint(bytes: Uint8Array, what = 'point'): Point {
  if (!(bytes instanceof Uint8Array) || bytes.length !== POINT_BYTES) {
    throw decodeError(what, `expected ${POINT_BYTES} bytes`);
  }
  // The identity is valid for RFC 9496 Decode (and for libsodium), so test it first and say so.
  if (isIdentity(bytes as Point)) {
    throw new BlindfoldError('ERR_IDENTITY', `invalid ${what}: the identity element`);
  }
  if (!sodium.crypto_core_ristretto255_is_valid_point(bytes)) {
    throw decodeError(what, 'not a canonical ristretto255 encoding');
  }
  return bytes.slice() as Point;
}

/** RFC 9496 §4.3.2 Encode. Points are stored encoded, so this is a defensive copy. */
export function encodePoint(p: Point): Uint8Array {
  return p.slice();
}

/**
 * True for the identity. Ristretto encodings are unique (RFC 9496 §4.3.2), and the identity
 * encodes as zeros; constant time because plaintext points are secret.
 */
export function isIdentity(p: Point): boolean {
  return equalBytes(p, ZERO32);
}

/** Equality of group elements = equality of canonical encodings (RFC 9496 §4.3.3). */
export function equalPoints(a: Point, b: Point): boolean {
  return equalBytes(a, b);
}

/** Group addition (RFC 9496 §4.3: the edwards25519 law on internal representatives). */
export function add(a: Point, b: Point): Point {
  return sodium.crypto_core_ristretto255_add(a, b) as Point;
}

/** a − b (RFC 9496 §4.3, on representatives). May return the identity. */
export function sub(a: Point, b: Point): Point {
  return sodium.crypto_core_ristretto255_sub(a, b) as Point;
}

/** −a = 0 − a (RFC 9496 §4.3, on representatives). The identity negates to itself. */
export function negate(a: Point): Point {
  return sodium.crypto_core_ristretto255_sub(IDENTITY, a) as Point;
}

/**
 * s·P, constant time (RFC 9496 §4.3, on representatives; s in Z_ℓ, §4.4). libsodium
 * refuses to return the identity; that happens only for P = identity or s = 0, so ERR_IDENTITY.
 */
export function mul(s: Scalar, p: Point): Point {
  try {
    return sodium.crypto_scalarmult_ristretto255(s, p) as Point;
  } catch (cause) {
    throw new BlindfoldError('ERR_IDENTITY', 'scalar multiplication gave the identity', { cause });
  }
}

/** s·B for the generator B of RFC 9496 §4 (constant time). ERR_IDENTITY for s = 0. */
export function mulBase(s: Scalar): Point {
  try {
    return sodium.crypto_scalarmult_ristretto255_base(s) as Point;
  } catch (cause) {
    throw new BlindfoldError('ERR_IDENTITY', 'scalar multiplication gave the identity', { cause });
  }
}

/**
 * RFC 9496 §4.3.4 element derivation ("one-way map", libsodium's from_hash): 64 uniform bytes
 * to a uniform point. Can give the identity (e.g. for 64 zero bytes).
 */
export function pointFromUniform(bytes: Uint8Array): Point {
  if (bytes.length !== WIDE_BYTES) {
    throw new BlindfoldError(
      'ERR_INVALID_ARGUMENT',
      `element derivation needs ${WIDE_BYTES} bytes`,
    );
  }
  return sodium.crypto_core_ristretto255_from_hash(bytes) as Point;
}

/**
 * A uniformly random point whose discrete log nobody knows: RFC 9496 §4.3.4 element derivation
 * of rng(64). Never the identity (retries; a uniform input hits it with probability ~2^-252).
 */
export function randomPoint(rng: Rng = systemRng): Point {
  for (;;) {
    const wide = rng(WIDE_BYTES);
    const p = pointFromUniform(wide);
    zeroize(wide);
    if (!isIdentity(p)) return p;
  }
}

// ---------------------------------------------------------------------------------------------
// Scalars: the field Z_ℓ of RFC 9496 §4.4, as 32 little-endian bytes
// ---------------------------------------------------------------------------------------------

/**
 * Canonical scalar decoding (RFC 9496 §4.4): exactly 32 bytes, little-endian, < ℓ (otherwise
 * ERR_DECODE); zero is refused with ERR_IDENTITY (the additive identity: it would make keys,
 * shares and blinds degenerate) unless `allowZero`.
 */
export function decodeScalar(bytes: Uint8Array, what = 'scalar', allowZero = false): Scalar {
  if (!(bytes instanceof Uint8Array) || bytes.length !== SCALAR_BYTES) {
    throw decodeError(what, `expected ${SCALAR_BYTES} bytes`);
  }
  // Canonical iff reducing it mod ℓ changes nothing; reduce and compare are both constant time
  // (secret keys go through here).
  const wide = concat(bytes, ZERO32);
  const reduced = sodium.crypto_core_ristretto255_scalar_reduce(wide);
  const canonical = equalBytes(reduced, bytes);
  zeroize(wide, reduced);
  if (!canonical) throw decodeError(what, 'not a canonical scalar (must be < ℓ)');
  if (!allowZero && isZeroScalar(bytes as Scalar)) {
    throw new BlindfoldError('ERR_IDENTITY', `invalid ${what}: zero`);
  }
  return bytes.slice() as Scalar;
}

/** RFC 9496 §4.4: 32 little-endian bytes (a copy). */
export function encodeScalar(s: Scalar): Uint8Array {
  return s.slice();
}

/** s = 0 in Z_ℓ (RFC 9496 §4.4); constant time. */
export function isZeroScalar(s: Scalar): boolean {
  return equalBytes(s, ZERO32);
}

/** Equality in Z_ℓ (RFC 9496 §4.4): canonical encodings, constant time. */
export function equalScalars(a: Scalar, b: Scalar): boolean {
  return equalBytes(a, b);
}

/** 64 bytes, little-endian, reduced mod ℓ (RFC 9496 §4.4; the reduction of RFC 9497 §4.1). */
export function scalarFromWide(bytes: Uint8Array): Scalar {
  if (bytes.length !== WIDE_BYTES) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', `scalar reduction needs ${WIDE_BYTES} bytes`);
  }
  return sodium.crypto_core_ristretto255_scalar_reduce(bytes) as Scalar;
}

/** x mod ℓ as a scalar (RFC 9496 §4.4); for constants and tests (bigints are not constant time). */
export function scalarFromBigInt(x: bigint): Scalar {
  let v = ((x % L) + L) % L;
  const out = new Uint8Array(SCALAR_BYTES);
  for (let i = 0; i < SCALAR_BYTES; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out as Scalar;
}

/** The scalar as a bigint (RFC 9496 §4.4, little-endian); for tests and cross-checks only. */
export function scalarToBigInt(s: Scalar): bigint {
  let v = 0n;
  for (let i = SCALAR_BYTES - 1; i >= 0; i--) v = (v << 8n) | BigInt(s[i]!);
  return v;
}

/**
 * A uniform nonzero scalar of Z_ℓ (RFC 9496 §4.4): reduce 64 random bytes mod ℓ (statistical
 * distance ≤ 2^-259 from uniform) and retry on zero, which happens with probability ~2^-252.
 */
export function randomScalar(rng: Rng = systemRng): Scalar {
  for (;;) {
    const wide = rng(WIDE_BYTES);
    const s = scalarFromWide(wide);
    zeroize(wide);
    if (!isZeroScalar(s)) return s;
  }
}

/** s^-1 in Z_ℓ (RFC 9496 §4.4); ERR_IDENTITY for zero, which has no inverse. */
export function scalarInvert(s: Scalar): Scalar {
  if (isZeroScalar(s)) throw new BlindfoldError('ERR_IDENTITY', 'zero scalar has no inverse');
  return sodium.crypto_core_ristretto255_scalar_invert(s) as Scalar;
}

/** a + b in Z_ℓ (RFC 9496 §4.4). */
export function scalarAdd(a: Scalar, b: Scalar): Scalar {
  return sodium.crypto_core_ristretto255_scalar_add(a, b) as Scalar;
}

/** a − b in Z_ℓ (RFC 9496 §4.4). */
export function scalarSub(a: Scalar, b: Scalar): Scalar {
  return sodium.crypto_core_ristretto255_scalar_sub(a, b) as Scalar;
}

/** a · b in Z_ℓ (RFC 9496 §4.4). */
export function scalarMul(a: Scalar, b: Scalar): Scalar {
  return sodium.crypto_core_ristretto255_scalar_mul(a, b) as Scalar;
}

/** −a in Z_ℓ (RFC 9496 §4.4). */
export function scalarNegate(a: Scalar): Scalar {
  return sodium.crypto_core_ristretto255_scalar_negate(a) as Scalar;
}
