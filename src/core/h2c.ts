/**
 * Hashing to ristretto255 and to its scalars.
 *
 *   expandMessageXmd  RFC 9380 §5.3.1 expand_message_xmd with H = SHA-512 (b = 64, s = 128 bytes)
 *   hashToGroup       RFC 9380 App. B hash_to_ristretto255 = RFC 9496 §4.3.4 element derivation
 *                     of expand_message_xmd(msg, DST, 64)
 *   hashToScalar      reduce(expand_message_xmd(msg, DST, 64)) mod ℓ, the HashToScalar of the
 *                     ristretto255-SHA512 suite of RFC 9497 §4.1
 *
 * Every DST Blindfold itself uses is "blindfold/v1/" ‖ a label naming its purpose (`blindfoldDst`),
 * so that no hash in this system can collide with another system's, or with another use here.
 * Test vectors: test/rfc9380.test.ts (RFC 9380 K.3, RFC 9497 A.1.1).
 */
import { concat, u8, u16be, utf8 } from './bytes.ts';
import { BlindfoldError } from './errors.ts';
import { type Point, pointFromUniform, type Scalar, scalarFromWide, WIDE_BYTES } from './group.ts';
import { sha512 } from './hash.ts';

/** SHA-512 output size b_in_bytes and block size s_in_bytes (RFC 9380 §5.3.1). */
const B_IN_BYTES = 64;
const S_IN_BYTES = 128;
/** RFC 9380 §5.3.1 step 2: ell ≤ 255, so at most 255 · 64 output bytes. */
export const XMD_MAX_LEN = 255 * B_IN_BYTES;
/** RFC 9380 §5.3.1 step 2 and §3.1: a DST is 1 to 255 bytes. */
export const DST_MAX_LEN = 255;

/** Prefix of every domain separation tag Blindfold defines. */
export const DST_PREFIX = 'blindfold/v1/';

/** "blindfold/v1/" ‖ label as UTF-8: the DST for one Blindfold use of a hash function. */
export function blindfoldDst(label: string): Uint8Array {
  return utf8(DST_PREFIX + label);
}

function dstBytes(dst: Uint8Array | string): Uint8Array {
  const d = typeof dst === 'string' ? utf8(dst) : dst;
  // §5.3.1 aborts on len(DST) > 255 (§5.3.3's hashing of long tags is not offered: ours are
  // short by construction); §3.1: "Tags MUST have nonzero length".
  if (d.length < 1 || d.length > DST_MAX_LEN) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', `DST must be 1 to ${DST_MAX_LEN} bytes`);
  }
  return d;
}

/** RFC 9380 §5.3.1 expand_message_xmd(msg, DST, len_in_bytes) with H = SHA-512. */
export function expandMessageXmd(
  msg: Uint8Array,
  dst: Uint8Array | string,
  lenInBytes: number,
): Uint8Array {
  const d = dstBytes(dst);
  // Step 1–2: ell = ceil(len / b); abort if ell > 255 (this also keeps len ≤ 65535).
  if (!Number.isInteger(lenInBytes) || lenInBytes < 1 || lenInBytes > XMD_MAX_LEN) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', `len_in_bytes must be 1 to ${XMD_MAX_LEN}`);
  }
  const ell = Math.ceil(lenInBytes / B_IN_BYTES);
  // Step 3: DST_prime = DST ‖ I2OSP(len(DST), 1).
  const dstPrime = concat(d, u8(d.length));
  // Steps 4–6: msg_prime = Z_pad ‖ msg ‖ l_i_b_str ‖ I2OSP(0, 1) ‖ DST_prime.
  const zPad = new Uint8Array(S_IN_BYTES);
  // Step 7: b_0 = H(msg_prime).
  const b0 = sha512(zPad, msg, u16be(lenInBytes), u8(0), dstPrime);
  // Step 8: b_1 = H(b_0 ‖ I2OSP(1, 1) ‖ DST_prime).
  const out = new Uint8Array(ell * B_IN_BYTES);
  let bi = sha512(b0, u8(1), dstPrime);
  out.set(bi, 0);
  // Steps 9–10: b_i = H(strxor(b_0, b_(i−1)) ‖ I2OSP(i, 1) ‖ DST_prime), concatenated.
  for (let i = 2; i <= ell; i++) {
    const x = new Uint8Array(B_IN_BYTES);
    for (let j = 0; j < B_IN_BYTES; j++) x[j] = b0[j]! ^ bi[j]!;
    bi = sha512(x, u8(i), dstPrime);
    out.set(bi, (i - 1) * B_IN_BYTES);
  }
  // Step 11: the first len_in_bytes bytes.
  return out.slice(0, lenInBytes);
}

/**
 * RFC 9380 Appendix B hash_to_ristretto255: the RFC 9496 §4.3.4 element derivation of
 * expand_message_xmd(msg, DST, 64). Returns the identity only for a preimage of a specific
 * SHA-512 output, which nobody can find.
 */
export function hashToGroup(msg: Uint8Array, dst: Uint8Array | string): Point {
  return pointFromUniform(expandMessageXmd(msg, dst, WIDE_BYTES));
}

/**
 * HashToScalar of RFC 9497 §4.1 (ristretto255-SHA512): expand_message_xmd(msg, DST, 64) read
 * little-endian and reduced mod ℓ. Zero with probability ~2^-252; callers that need a nonzero
 * scalar check.
 */
export function hashToScalar(msg: Uint8Array, dst: Uint8Array | string): Scalar {
  const wide = expandMessageXmd(msg, dst, WIDE_BYTES);
  const s = scalarFromWide(wide);
  wide.fill(0);
  return s;
}
