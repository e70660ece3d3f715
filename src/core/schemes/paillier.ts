/**
 * Paillier encryption (Paillier, EUROCRYPT 1999) with g = n + 1: additively homomorphic over Z_n
 * (SPEC.md §3.3).
 *
 *   public key   n = p·q, |n| ≥ 2048 bits          secret key   p, q
 *   Enc(m; r)    (1 + m·n) · r^n mod n²            Dec          CRT over p², q² (below)
 *   ⊕            addition mod n                     on ciphertexts: multiplication mod n²
 *
 * Every unit of Z_{n²} is Enc(m; r) for exactly one (m, r) ∈ Z_n × Z_n^* (Paillier's Lemma 3),
 * so a uniform unit is an encryption of a uniform m that nobody knows: `sampleUnknown` costs no
 * exponentiation. Blinding adds Enc(Z) for a uniform Z ∈ Z_n, which also rerandomizes.
 *
 * Share action: S = M + Q mod n. Masters and shares are below 2^256 (SPEC.md §3.3), so S is the
 * integer M + Q under every modulus. Unlike EC-ElGamal, the manager's answer Dec(C') + Q is a
 * plain decryption offset by Q: an appliance that sends Enc(0) learns Q (DESIGN.md §4, "a trap to
 * design out"); for this scheme the bound is organisational (tickets, rate limits, rotation).
 *
 * Encodings (SPEC.md §3.3): public key u16be(|n|) ‖ n; secret key lp16(p) ‖ lp16(q);
 * ciphertext |n²| bytes; plaintext and share |n| bytes; all big-endian, fixed length.
 */

import { byteLength, gcd, mod, modInv, modPow, randomBelow } from '../bigint.ts';
import { bigToBytes, equalBytes } from '../bytes.ts';
import { BlindfoldError, decodeError, decryptFailed } from '../errors.ts';
import { type Rng, systemRng } from '../random.ts';
import {
  checkRange,
  decodeFactors,
  decodeFixed,
  decodeModulus,
  encodeFactors,
  encodeInt,
  encodeModulus,
  exponentBlind,
  fingerprintOf,
  generatePrimePair,
  type IntegerKeygenOptions,
  isSecretSized,
  itemSecretBytes,
  randomSecret,
  secretFromSeed,
} from './int-common.ts';
import type { BlindResult, HomomorphicScheme, KeyPair } from './scheme.ts';

export interface PaillierPublicKey {
  readonly n: bigint;
  readonly n2: bigint;
  /** Byte length of n: plaintexts and shares. */
  readonly nBytes: number;
  /** Byte length of n²: ciphertexts. */
  readonly n2Bytes: number;
}

export interface PaillierSecretKey {
  readonly pk: PaillierPublicKey;
  readonly p: bigint;
  readonly q: bigint;
  readonly p2: bigint;
  readonly q2: bigint;
  /** h_p = L_p(g^(p−1) mod p²)^−1 mod p (Paillier §7, "decryption using Chinese-remaindering"). */
  readonly hp: bigint;
  readonly hq: bigint;
  /** q^−1 mod p, for Garner's recombination. */
  readonly qInvP: bigint;
}

/** A ciphertext: a unit of Z_{n²}. */
export type PaillierCiphertext = bigint;
/** A plaintext: an element of Z_n. */
export type PaillierPlaintext = bigint;
/** A share: an integer in [1, 2^256). */
export type PaillierShare = bigint;
/** The blinding Z ∈ Z_n. A BigInt cannot be wiped: `wipeBlind` drops it (SPEC.md §2.6). */
export interface PaillierBlind {
  z: bigint;
}

const ID = 'paillier';

function publicKey(n: bigint): PaillierPublicKey {
  const n2 = n * n;
  return { n, n2, nBytes: byteLength(n), n2Bytes: byteLength(n2) };
}

/** Precomputes the CRT constants; with g = n + 1, L_p(g^(p−1) mod p²) = (p − 1)·q ≡ −q (mod p). */
function secretKey(p: bigint, q: bigint): PaillierSecretKey {
  const n = p * q;
  if (gcd(n, (p - 1n) * (q - 1n)) !== 1n) {
    throw new BlindfoldError('ERR_PARAMS', 'paillier secret key: gcd(n, φ(n)) ≠ 1');
  }
  return {
    pk: publicKey(n),
    p,
    q,
    p2: p * p,
    q2: q * q,
    hp: modInv(mod(-q, p), p),
    hq: modInv(mod(-p, q), q),
    qInvP: modInv(q, p),
  };
}

/** (1 + m·n) · r^n mod n² for a fresh r ∈ [1, n). */
function enc(pk: PaillierPublicKey, m: bigint, rng: Rng): bigint {
  const r = 1n + randomBelow(pk.n - 1n, rng);
  return (((1n + m * pk.n) % pk.n2) * modPow(r, pk.n, pk.n2)) % pk.n2;
}

/**
 * m mod p from c: L_p(c^(k·(p−1)) mod p²) · h_p · k^−1 mod p. The factor k is the exponent
 * blinding (int-common.ts `exponentBlind`): c^(k(p−1)) = (1 + m·n)^(k(p−1)) · r^(n·k(p−1)) and
 * the second factor is 1 mod p² because p(p − 1) divides n(p − 1).
 */
function decryptHalf(c: bigint, p: bigint, p2: bigint, h: bigint): bigint {
  const k = exponentBlind();
  const x = modPow(c % p2, k * (p - 1n), p2);
  const l = (x - 1n) / p;
  return (((l * h) % p) * modInv(k, p)) % p;
}

function encodePlain(pk: PaillierPublicKey, m: bigint): Uint8Array {
  checkRange(m, 0n, pk.n, 'paillier plaintext');
  return encodeInt(m, pk.nBytes);
}

export const paillier: HomomorphicScheme<
  PaillierPublicKey,
  PaillierSecretKey,
  PaillierCiphertext,
  PaillierPlaintext,
  PaillierShare,
  PaillierBlind
> = {
  id: ID,
  deterministic: false,
  supportsObliviousSampling: true,

  generateKeyPair(opts?: IntegerKeygenOptions): KeyPair<PaillierPublicKey, PaillierSecretKey> {
    const { p, q } = generatePrimePair(opts);
    const sk = secretKey(p, q);
    return { publicKey: sk.pk, secretKey: sk };
  },

  publicKeyOf(sk: PaillierSecretKey): PaillierPublicKey {
    return sk.pk;
  },

  encrypt(pk: PaillierPublicKey, m: PaillierPlaintext, rng: Rng = systemRng): PaillierCiphertext {
    checkRange(m, 0n, pk.n, 'paillier plaintext');
    return enc(pk, m, rng);
  },

  /** Paillier §7 CRT decryption, then Garner: m = m_q + q·((m_p − m_q)·q^−1 mod p). */
  decrypt(sk: PaillierSecretKey, c: PaillierCiphertext): PaillierPlaintext {
    checkRange(c, 1n, sk.pk.n2, 'paillier ciphertext');
    // A non-unit would make L_p meaningless and its "plaintext" a function of p: refuse it.
    if (c % sk.p === 0n || c % sk.q === 0n) throw decryptFailed();
    const mp = decryptHalf(c, sk.p, sk.p2, sk.hp);
    const mq = decryptHalf(c, sk.q, sk.q2, sk.hq);
    return mq + sk.q * mod((mp - mq) * sk.qInvP, sk.p);
  },

  combine(pk: PaillierPublicKey, a: PaillierCiphertext, b: PaillierCiphertext): PaillierCiphertext {
    return (a * b) % pk.n2;
  },

  uncombine(
    pk: PaillierPublicKey,
    a: PaillierCiphertext,
    b: PaillierCiphertext,
  ): PaillierCiphertext {
    return (a * modInv(b, pk.n2)) % pk.n2;
  },

  /** c · (1 + m·n) = c · g^m mod n²: adds the known m without new randomness. */
  combinePlain(
    pk: PaillierPublicKey,
    c: PaillierCiphertext,
    m: PaillierPlaintext,
  ): PaillierCiphertext {
    checkRange(m, 0n, pk.n, 'paillier plaintext');
    return (c * ((1n + m * pk.n) % pk.n2)) % pk.n2;
  },

  rerandomize(pk: PaillierPublicKey, c: PaillierCiphertext, rng: Rng = systemRng) {
    return (c * enc(pk, 0n, rng)) % pk.n2;
  },

  /** A uniform unit of Z_{n²}: Enc(m; r) for a uniform m nobody knows (module comment). */
  sampleUnknown(pk: PaillierPublicKey, rng: Rng = systemRng): PaillierCiphertext {
    for (;;) {
      const c = randomBelow(pk.n2, rng);
      if (c !== 0n && gcd(c, pk.n) === 1n) return c;
    }
  },

  op(pk: PaillierPublicKey, a: PaillierPlaintext, b: PaillierPlaintext): PaillierPlaintext {
    return (a + b) % pk.n;
  },

  inv(pk: PaillierPublicKey, a: PaillierPlaintext): PaillierPlaintext {
    return mod(-a, pk.n);
  },

  identity(_pk: PaillierPublicKey): PaillierPlaintext {
    return 0n;
  },

  /** A secret-sized plaintext: uniform in [1, 2^256) (SPEC.md §3.3; never the identity 0). */
  randomPlaintext(_pk: PaillierPublicKey, rng: Rng = systemRng): PaillierPlaintext {
    return randomSecret(rng, 1n);
  },

  /** 32 bytes of deriveKey(seed, "scheme/paillier/plaintext", ·, 32): in [1, 2^256). */
  plaintextFromSeed(_pk: PaillierPublicKey, seed: Uint8Array): PaillierPlaintext {
    return secretFromSeed(seed, `scheme/${ID}/plaintext`, 1n);
  },

  equalPlaintext(a: PaillierPlaintext, b: PaillierPlaintext): boolean {
    // Fixed-width comparison of the two values (secrets), not BigInt `===`.
    const len = Math.max(byteLength(a), byteLength(b), 1);
    return equalBytes(bigToBytes(a, len), bigToBytes(b, len));
  },

  /** 32 bytes of deriveKey(seed, "scheme/paillier/share", ·, 32): in [1, 2^256). */
  shareFromSeed(_pk: PaillierPublicKey, seed: Uint8Array): PaillierShare {
    return secretFromSeed(seed, `scheme/${ID}/share`, 1n);
  },

  randomShare(_pk: PaillierPublicKey, rng: Rng = systemRng): PaillierShare {
    return randomSecret(rng, 1n);
  },

  applyShare(pk: PaillierPublicKey, x: PaillierPlaintext, q: PaillierShare): PaillierPlaintext {
    return (x + q) % pk.n;
  },

  /** C · Enc(Z) for a fresh uniform Z ∈ Z_n: encrypts M + Z, uniform to the key holder. */
  blind(
    pk: PaillierPublicKey,
    c: PaillierCiphertext,
    rng: Rng = systemRng,
  ): BlindResult<PaillierCiphertext, PaillierBlind> {
    const z = randomBelow(pk.n, rng);
    return { ciphertext: (c * enc(pk, z, rng)) % pk.n2, blind: { z } };
  },

  unblind(pk: PaillierPublicKey, b: PaillierBlind, y: PaillierPlaintext): PaillierPlaintext {
    return mod(y - b.z, pk.n);
  },

  wipeBlind(b: PaillierBlind): void {
    b.z = 0n;
  },

  transfer: {
    /**
     * Z uniform in [0, n − 2^256) so that M + Z never wraps modulo this n (M < 2^256): the
     * integer M + Z then decrypts the same under any other modulus. Statistical distance from
     * uniform over Z_n: 2^256 / n ≤ 2^-1791.
     */
    blind(pk: PaillierPublicKey, c: PaillierCiphertext, rng: Rng = systemRng) {
      const z = randomBelow(pk.n - (1n << 256n), rng);
      return { ciphertext: (c * enc(pk, z, rng)) % pk.n2, blind: { z } };
    },
    reencrypt(
      sk: PaillierSecretKey,
      pkTarget: PaillierPublicKey,
      c: PaillierCiphertext,
      rng: Rng = systemRng,
    ) {
      return enc(pkTarget, paillier.decrypt(sk, c) % pkTarget.n, rng);
    },
    /** C · Enc_B(−Z) = Enc_B(M), with fresh randomness from the encryption. */
    unblindCiphertext(
      pkTarget: PaillierPublicKey,
      b: PaillierBlind,
      c: PaillierCiphertext,
      rng: Rng = systemRng,
    ) {
      return (c * enc(pkTarget, mod(-b.z, pkTarget.n), rng)) % pkTarget.n2;
    },
  },

  encodePublicKey(pk: PaillierPublicKey): Uint8Array {
    return encodeModulus(pk.n);
  },

  decodePublicKey(b: Uint8Array): PaillierPublicKey {
    const { n, end } = decodeModulus(b, 'paillier public key');
    if (end !== b.length) throw decodeError('paillier public key', 'trailing bytes');
    return publicKey(n);
  },

  encodeSecretKey(sk: PaillierSecretKey): Uint8Array {
    return encodeFactors(sk.p, sk.q);
  },

  decodeSecretKey(b: Uint8Array): PaillierSecretKey {
    const { p, q } = decodeFactors(b, 'paillier secret key');
    return secretKey(p, q);
  },

  encodeCiphertext(pk: PaillierPublicKey, c: PaillierCiphertext): Uint8Array {
    checkRange(c, 1n, pk.n2, 'paillier ciphertext');
    return encodeInt(c, pk.n2Bytes);
  },

  /** |n²| bytes, a unit of Z_{n²}: 0 < c < n² and gcd(c, n) = 1. */
  decodeCiphertext(pk: PaillierPublicKey, b: Uint8Array): PaillierCiphertext {
    const c = decodeFixed(b, pk.n2Bytes, 'paillier ciphertext');
    if (c === 0n || c >= pk.n2) throw decodeError('paillier ciphertext', 'out of range');
    if (gcd(c, pk.n) !== 1n) throw decodeError('paillier ciphertext', 'not a unit');
    return c;
  },

  encodePlaintext: encodePlain,

  decodePlaintext(pk: PaillierPublicKey, b: Uint8Array): PaillierPlaintext {
    const m = decodeFixed(b, pk.nBytes, 'paillier plaintext');
    if (m >= pk.n) throw decodeError('paillier plaintext', 'out of range');
    return m;
  },

  encodeShare(pk: PaillierPublicKey, q: PaillierShare): Uint8Array {
    // Encoders refuse what decoders refuse: a share is secret-sized (SPEC.md §3.3).
    if (typeof q !== 'bigint' || !isSecretSized(q, 1n)) {
      throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'paillier share out of range');
    }
    return encodeInt(q, pk.nBytes);
  },

  /** |n| bytes holding an integer in [1, 2^256); 0 is the neutral share (ERR_IDENTITY). */
  decodeShare(pk: PaillierPublicKey, b: Uint8Array): PaillierShare {
    const q = decodeFixed(b, pk.nBytes, 'paillier share');
    if (q === 0n) throw new BlindfoldError('ERR_IDENTITY', 'invalid paillier share: zero');
    if (!isSecretSized(q, 1n)) throw decodeError('paillier share', 'not below 2^256');
    return q;
  },

  /** S = M + Q as an integer (< 2^257), 64 bytes big-endian (SPEC.md §3.3). */
  secretBytes(_pk: PaillierPublicKey, s: PaillierPlaintext): Uint8Array {
    return itemSecretBytes(s);
  },

  fingerprint(pk: PaillierPublicKey): Uint8Array {
    return fingerprintOf(ID, encodeModulus(pk.n));
  },
};
