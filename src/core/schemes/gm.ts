/**
 * Goldwasser–Micali encryption (Goldwasser and Micali, "Probabilistic encryption", 1984): XOR-
 * homomorphic encryption of 256-bit strings, one modulus-sized ciphertext per bit (SPEC.md §3.3, GM).
 *
 *   public key   n = p·q (|n| ≥ 2048), y          secret key   p, q
 *   Enc(b; x)    x² · y^b mod n, per bit b          Dec          b = 0 iff c is a square mod p
 *   ⊕            XOR                                on ciphertexts: per-bit multiplication mod n
 *
 * y is a quadratic non-residue modulo both p and q, so its Jacobi symbol modulo n is +1 and, by
 * the quadratic residuosity assumption, squares and y·squares are indistinguishable without the
 * factors. We take y deterministic in (p, q) — the least integer ≥ 2 that is a non-residue modulo
 * both — so that the secret key is just (p, q). A small public y reveals a few Legendre symbols
 * of small integers modulo p and q (a few bits of p mod 8 and the like), which does not help
 * factoring; y = −1 for Blum integers reveals as much.
 *
 * Every element of Jacobi symbol +1 is a valid ciphertext of exactly one bit, so uniform such
 * elements encrypt uniform bits that nobody knows (`sampleUnknown`); decoders reject anything
 * else. Ciphertexts are big (256 × |n| bytes, 64 KiB at 2048 bits) and the scheme is slow; it is
 * here because the seed names XOR as an operator, not for performance.
 *
 * Share action: S = M XOR Q. As with Paillier, the manager's answer is a plain decryption XOR Q
 * (DESIGN.md §4).
 *
 * Encodings (SPEC.md §3.3): public key u16be(|n|) ‖ n ‖ y (|n| bytes); secret key lp16(p) ‖
 * lp16(q); ciphertext c_0 ‖ … ‖ c_255, each |n| bytes big-endian, c_i encrypting bit i of the
 * plaintext, bit i = (byte[i >> 3] >> (7 − (i & 7))) & 1 (most significant bit first); plaintext
 * and share 32 bytes.
 */

import { byteLength, isPerfectSquare, jacobi, randomBelow } from '../bigint.ts';
import { concat, equalBytes, zeroize } from '../bytes.ts';
import { BlindfoldError, decodeError, decryptFailed } from '../errors.ts';
import { type Rng, systemRng } from '../random.ts';
import {
  decodeFactors,
  decodeFixed,
  decodeModulus,
  encodeFactors,
  encodeInt,
  encodeModulus,
  expandSeed,
  fingerprintOf,
  generatePrimePair,
  type IntegerKeygenOptions,
} from './int-common.ts';
import type { BlindResult, HomomorphicScheme, KeyPair } from './scheme.ts';

/** Plaintext length: a 256-bit string. */
export const GM_BITS = 256;
export const GM_PLAINTEXT_BYTES = 32;

export interface GmPublicKey {
  readonly n: bigint;
  /** A non-residue modulo p and q, Jacobi symbol +1 modulo n. */
  readonly y: bigint;
  readonly nBytes: number;
}

export interface GmSecretKey {
  readonly pk: GmPublicKey;
  readonly p: bigint;
  readonly q: bigint;
}

/** 256 elements of Z_n^* of Jacobi symbol +1, one per plaintext bit. */
export type GmCiphertext = readonly bigint[];
/** 32 bytes. */
export type GmPlaintext = Uint8Array;
/** 32 bytes, never all zero. */
export type GmShare = Uint8Array;
/** The 32-byte blinding Z; `wipeBlind` zeroes it. */
export type GmBlind = Uint8Array;

const ID = 'gm';
const ZERO = new Uint8Array(GM_PLAINTEXT_BYTES);

function bit(m: Uint8Array, i: number): number {
  return (m[i >> 3]! >> (7 - (i & 7))) & 1;
}

function isZero(b: Uint8Array): boolean {
  return equalBytes(b, ZERO);
}

/**
 * The least integer y ≥ 2 that is a quadratic non-residue modulo both p and q. For primes it
 * is tiny (each y qualifies with probability 1/4); the bound only stops a corrupt key (p a
 * perfect square has no non-residue) from looping forever.
 */
function deriveY(p: bigint, q: bigint): bigint {
  for (let y = 2n; y < 1n << 16n; y++) {
    if (jacobi(y, p) === -1 && jacobi(y, q) === -1) return y;
  }
  throw new BlindfoldError('ERR_PARAMS', 'gm secret key: no common non-residue below 2^16');
}

function publicKey(n: bigint, y: bigint): GmPublicKey {
  return { n, y, nBytes: byteLength(n) };
}

function secretKey(p: bigint, q: bigint): GmSecretKey {
  return { pk: publicKey(p * q, deriveY(p, q)), p, q };
}

function checkBytes(m: unknown, what: string): asserts m is Uint8Array {
  if (!(m instanceof Uint8Array) || m.length !== GM_PLAINTEXT_BYTES) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', `${what} must be ${GM_PLAINTEXT_BYTES} bytes`);
  }
}

function checkCiphertext(c: unknown): asserts c is GmCiphertext {
  if (!Array.isArray(c) || c.length !== GM_BITS) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', `gm ciphertext must have ${GM_BITS} elements`);
  }
}

/** x² mod n for a fresh x ∈ [1, n): a uniform square (x is a unit except with probability ~2^-1023). */
function randomSquare(pk: GmPublicKey, rng: Rng): bigint {
  const x = 1n + randomBelow(pk.n - 1n, rng);
  return (x * x) % pk.n;
}

function xor(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(GM_PLAINTEXT_BYTES);
  for (let i = 0; i < GM_PLAINTEXT_BYTES; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

function randomNonZero(rng: Rng): Uint8Array {
  for (;;) {
    const b = rng(GM_PLAINTEXT_BYTES);
    if (!isZero(b)) return b;
  }
}

export const gm: HomomorphicScheme<
  GmPublicKey,
  GmSecretKey,
  GmCiphertext,
  GmPlaintext,
  GmShare,
  GmBlind
> = {
  id: ID,
  deterministic: false,
  supportsObliviousSampling: true,

  generateKeyPair(opts?: IntegerKeygenOptions): KeyPair<GmPublicKey, GmSecretKey> {
    const { p, q } = generatePrimePair(opts);
    const sk = secretKey(p, q);
    return { publicKey: sk.pk, secretKey: sk };
  },

  publicKeyOf(sk: GmSecretKey): GmPublicKey {
    return sk.pk;
  },

  encrypt(pk: GmPublicKey, m: GmPlaintext, rng: Rng = systemRng): GmCiphertext {
    checkBytes(m, 'gm plaintext');
    const out: bigint[] = [];
    for (let i = 0; i < GM_BITS; i++) {
      const s = randomSquare(pk, rng);
      out.push(bit(m, i) ? (s * pk.y) % pk.n : s);
    }
    return out;
  },

  /**
   * Bit i is 0 iff c_i is a square modulo p, read off the Legendre symbol (c_i / p) computed by
   * the binary Jacobi algorithm (faster than Euler's criterion). A symbol of 0 means c_i is not a
   * unit, which no encryption produces.
   */
  decrypt(sk: GmSecretKey, c: GmCiphertext): GmPlaintext {
    checkCiphertext(c);
    const out = new Uint8Array(GM_PLAINTEXT_BYTES);
    for (let i = 0; i < GM_BITS; i++) {
      const l = jacobi(c[i]! % sk.p, sk.p);
      if (l === 0) throw decryptFailed();
      if (l === -1) out[i >> 3]! |= 0x80 >> (i & 7);
    }
    return out;
  },

  combine(pk: GmPublicKey, a: GmCiphertext, b: GmCiphertext): GmCiphertext {
    checkCiphertext(a);
    checkCiphertext(b);
    return a.map((x, i) => (x * b[i]!) % pk.n);
  },

  /**
   * XOR is its own inverse, so Enc(a ⊖ b) = Enc(a XOR b) = combine(a, b): no modular inverses
   * needed (c_i · d_i and c_i · d_i^−1 differ by the square d_i², same bits).
   */
  uncombine(pk: GmPublicKey, a: GmCiphertext, b: GmCiphertext): GmCiphertext {
    return gm.combine(pk, a, b);
  },

  /** Multiplies c_i by y where bit i of m is 1. */
  combinePlain(pk: GmPublicKey, c: GmCiphertext, m: GmPlaintext): GmCiphertext {
    checkCiphertext(c);
    checkBytes(m, 'gm plaintext');
    return c.map((x, i) => (bit(m, i) ? (x * pk.y) % pk.n : x));
  },

  /** Multiplies every c_i by a fresh square. */
  rerandomize(pk: GmPublicKey, c: GmCiphertext, rng: Rng = systemRng): GmCiphertext {
    checkCiphertext(c);
    return c.map((x) => (x * randomSquare(pk, rng)) % pk.n);
  },

  /**
   * 256 uniform elements of Jacobi symbol +1 (rejection sampling): each is a square or y times a
   * square with probability 1/2, and telling which is the quadratic residuosity problem, so the
   * bits are uniform and unknown to the caller (SPEC.md §3.5).
   */
  sampleUnknown(pk: GmPublicKey, rng: Rng = systemRng): GmCiphertext {
    const out: bigint[] = [];
    while (out.length < GM_BITS) {
      const c = randomBelow(pk.n, rng);
      if (c !== 0n && jacobi(c, pk.n) === 1) out.push(c);
    }
    return out;
  },

  op(_pk: GmPublicKey, a: GmPlaintext, b: GmPlaintext): GmPlaintext {
    return xor(a, b);
  },

  inv(_pk: GmPublicKey, a: GmPlaintext): GmPlaintext {
    return a.slice();
  },

  identity(_pk: GmPublicKey): GmPlaintext {
    return new Uint8Array(GM_PLAINTEXT_BYTES);
  },

  /** 32 uniform bytes, never all zero. */
  randomPlaintext(_pk: GmPublicKey, rng: Rng = systemRng): GmPlaintext {
    return randomNonZero(rng);
  },

  /** deriveKey(seed, "scheme/gm/plaintext", ·, 32), never all zero. */
  plaintextFromSeed(_pk: GmPublicKey, seed: Uint8Array): GmPlaintext {
    return expandSeed(
      seed,
      `scheme/${ID}/plaintext`,
      32,
      (b) => b.slice(),
      (b) => !isZero(b),
    );
  },

  equalPlaintext(a: GmPlaintext, b: GmPlaintext): boolean {
    return equalBytes(a, b);
  },

  /** deriveKey(seed, "scheme/gm/share", ·, 32), never all zero (the neutral share). */
  shareFromSeed(_pk: GmPublicKey, seed: Uint8Array): GmShare {
    return expandSeed(
      seed,
      `scheme/${ID}/share`,
      32,
      (b) => b.slice(),
      (b) => !isZero(b),
    );
  },

  randomShare(_pk: GmPublicKey, rng: Rng = systemRng): GmShare {
    return randomNonZero(rng);
  },

  applyShare(_pk: GmPublicKey, x: GmPlaintext, q: GmShare): GmPlaintext {
    checkBytes(x, 'gm plaintext');
    checkBytes(q, 'gm share');
    return xor(x, q);
  },

  /** C ⊕ Enc(Z) for a fresh uniform Z, with fresh squares on every element. */
  blind(
    pk: GmPublicKey,
    c: GmCiphertext,
    rng: Rng = systemRng,
  ): BlindResult<GmCiphertext, GmBlind> {
    const z = rng(GM_PLAINTEXT_BYTES);
    const ciphertext = gm.rerandomize(pk, gm.combinePlain(pk, c, z), rng);
    return { ciphertext, blind: z };
  },

  unblind(_pk: GmPublicKey, b: GmBlind, y: GmPlaintext): GmPlaintext {
    checkBytes(y, 'gm plaintext');
    return xor(y, b);
  },

  wipeBlind(b: GmBlind): void {
    zeroize(b);
  },

  transfer: {
    blind(pk: GmPublicKey, c: GmCiphertext, rng: Rng = systemRng) {
      return gm.blind(pk, c, rng);
    },
    reencrypt(sk: GmSecretKey, pkTarget: GmPublicKey, c: GmCiphertext, rng: Rng = systemRng) {
      return gm.encrypt(pkTarget, gm.decrypt(sk, c), rng);
    },
    /** XOR the known Z back out under the target key, then fresh randomness for every bit. */
    unblindCiphertext(pkTarget: GmPublicKey, b: GmBlind, c: GmCiphertext, rng: Rng = systemRng) {
      return gm.rerandomize(pkTarget, gm.combinePlain(pkTarget, c, b), rng);
    },
  },

  encodePublicKey(pk: GmPublicKey): Uint8Array {
    return concat(encodeModulus(pk.n), encodeInt(pk.y, pk.nBytes));
  },

  /**
   * Checks the modulus (int-common.ts), then y: in [1, n) (ERR_DECODE), Jacobi symbol +1 and not
   * an integer square (ERR_PARAMS). That y is a non-residue cannot be checked without p and q.
   */
  decodePublicKey(b: Uint8Array): GmPublicKey {
    const what = 'gm public key';
    const { n, end } = decodeModulus(b, what);
    const pk = publicKey(n, 0n);
    if (b.length !== end + pk.nBytes) throw decodeError(what, `expected y of ${pk.nBytes} bytes`);
    const y = decodeFixed(b.subarray(end), pk.nBytes, what);
    if (y === 0n || y >= n) throw decodeError(what, 'y out of range');
    if (jacobi(y, n) !== 1 || isPerfectSquare(y)) {
      throw new BlindfoldError(
        'ERR_PARAMS',
        `${what}: y must have Jacobi symbol +1 and not be a square`,
      );
    }
    return { ...pk, y };
  },

  encodeSecretKey(sk: GmSecretKey): Uint8Array {
    return encodeFactors(sk.p, sk.q);
  },

  decodeSecretKey(b: Uint8Array): GmSecretKey {
    const { p, q } = decodeFactors(b, 'gm secret key');
    return secretKey(p, q);
  },

  encodeCiphertext(pk: GmPublicKey, c: GmCiphertext): Uint8Array {
    checkCiphertext(c);
    return concat(...c.map((x) => encodeInt(x, pk.nBytes)));
  },

  /** 256 × |n| bytes; every c_i in (0, n) with Jacobi symbol +1 (else it encrypts no bit). */
  decodeCiphertext(pk: GmPublicKey, b: Uint8Array): GmCiphertext {
    const what = 'gm ciphertext';
    if (!(b instanceof Uint8Array) || b.length !== GM_BITS * pk.nBytes) {
      throw decodeError(what, `expected ${GM_BITS * pk.nBytes} bytes`);
    }
    const out: bigint[] = [];
    for (let i = 0; i < GM_BITS; i++) {
      const c = decodeFixed(b.subarray(i * pk.nBytes, (i + 1) * pk.nBytes), pk.nBytes, what);
      if (c === 0n || c >= pk.n) throw decodeError(what, `element ${i} out of range`);
      if (jacobi(c, pk.n) !== 1) throw decodeError(what, `element ${i} has Jacobi symbol ≠ +1`);
      out.push(c);
    }
    return out;
  },

  encodePlaintext(_pk: GmPublicKey, m: GmPlaintext): Uint8Array {
    checkBytes(m, 'gm plaintext');
    return m.slice();
  },

  decodePlaintext(_pk: GmPublicKey, b: Uint8Array): GmPlaintext {
    if (!(b instanceof Uint8Array) || b.length !== GM_PLAINTEXT_BYTES) {
      throw decodeError('gm plaintext', `expected ${GM_PLAINTEXT_BYTES} bytes`);
    }
    return b.slice();
  },

  encodeShare(_pk: GmPublicKey, q: GmShare): Uint8Array {
    checkBytes(q, 'gm share');
    if (isZero(q)) throw new BlindfoldError('ERR_IDENTITY', 'cannot encode the neutral gm share');
    return q.slice();
  },

  decodeShare(_pk: GmPublicKey, b: Uint8Array): GmShare {
    if (!(b instanceof Uint8Array) || b.length !== GM_PLAINTEXT_BYTES) {
      throw decodeError('gm share', `expected ${GM_PLAINTEXT_BYTES} bytes`);
    }
    if (isZero(b)) throw new BlindfoldError('ERR_IDENTITY', 'invalid gm share: all zero');
    return b.slice();
  },

  /** The 32-byte plaintext itself: XOR needs no key-dependent normalisation. */
  secretBytes(_pk: GmPublicKey, s: GmPlaintext): Uint8Array {
    checkBytes(s, 'gm item secret');
    return s.slice();
  },

  fingerprint(pk: GmPublicKey): Uint8Array {
    return fingerprintOf(ID, gm.encodePublicKey(pk));
  },
};
