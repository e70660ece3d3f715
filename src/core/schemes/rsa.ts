/**
 * Textbook RSA as a multiplicative homomorphism over Z_n^* (SPEC.md §3.3, RSA).
 *
 *   public key   n = p·q (|n| ≥ 2048), e = 65537    secret key   p, q (d and the CRT values derived)
 *   Enc(m)       m^e mod n                         Dec          c^d mod n, by CRT
 *   ⊕            multiplication mod n               on ciphertexts: multiplication mod n
 *
 * This is raw RSA, without OAEP or any padding, on purpose: the protocol needs
 * Enc(a)·Enc(b) = Enc(a·b), and padding exists precisely to destroy that. What raw RSA gives up,
 * and why the protocol does not need it (SPEC.md §3.3):
 *   - It is deterministic: equal plaintexts give equal ciphertexts, and `rerandomize` can only be
 *     the identity. The protocol never encrypts a guessable value: a master is a uniform 256-bit
 *     integer, and every request the key holder sees is blinded with a fresh uniform unit Z, so
 *     the key holder sees Enc(M·Z), a uniform element, never the same one twice.
 *   - It is malleable: anyone can turn Enc(m) into Enc(m·k). That is the homomorphism we use;
 *     integrity comes from the tickets (HMAC over the request) and from the AEAD that the item
 *     key finally opens, never from RSA. A tampered answer yields a wrong item secret, which
 *     `secretBytes` or the AEAD then rejects.
 *   - A stolen Enc(M) of a 256-bit M could be attacked by meet-in-the-middle when M happens to
 *     split into two 128-bit factors (Boneh–Joux–Nguyen 2000): about 2^128 work, which is the
 *     security level of the rest of the system.
 * Like Paillier, the manager's answer Dec(C')·Q is a plain decryption times Q (DESIGN.md §4).
 *
 * Encodings (SPEC.md §3.3): public key u16be(|n|) ‖ n ‖ u32be(e) with e = 65537; secret key
 * lp16(p) ‖ lp16(q); ciphertext, plaintext and share |n| bytes big-endian.
 */

import { byteLength, gcd, lcm, mod, modInv, modPow, randomUnit } from '../bigint.ts';
import { bigToBytes, concat, equalBytes, readU32be, u32be } from '../bytes.ts';
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
  isUnit,
  itemSecretBytes,
  randomSecret,
  secretFromSeed,
} from './int-common.ts';
import type { BlindResult, HomomorphicScheme, KeyPair } from './scheme.ts';

/** The only public exponent we accept (SPEC.md §3.3). */
export const RSA_E = 65537n;

export interface RsaPublicKey {
  readonly n: bigint;
  readonly e: bigint;
  readonly nBytes: number;
}

export interface RsaSecretKey {
  readonly pk: RsaPublicKey;
  readonly p: bigint;
  readonly q: bigint;
  /** d = e^−1 mod λ(n) (RFC 8017 §3.2 allows λ or φ). */
  readonly d: bigint;
  readonly dp: bigint;
  readonly dq: bigint;
  /** q^−1 mod p (RFC 8017 §3.2 "qInv"). */
  readonly qInv: bigint;
}

/** A ciphertext: a unit of Z_n. */
export type RsaCiphertext = bigint;
/** A plaintext: a unit of Z_n. */
export type RsaPlaintext = bigint;
/** A share: an integer in [2, 2^256) (a unit, since p, q > 2^1023). */
export type RsaShare = bigint;
/** The blinding Z ∈ Z_n^*. A BigInt cannot be wiped: `wipeBlind` drops it (SPEC.md §2.6). */
export interface RsaBlind {
  z: bigint;
}

const ID = 'rsa';

function publicKey(n: bigint): RsaPublicKey {
  return { n, e: RSA_E, nBytes: byteLength(n) };
}

function secretKey(p: bigint, q: bigint): RsaSecretKey {
  const lambda = lcm(p - 1n, q - 1n);
  if (gcd(RSA_E, lambda) !== 1n) {
    throw new BlindfoldError('ERR_PARAMS', 'rsa secret key: e is not invertible mod λ(n)');
  }
  const d = modInv(RSA_E, lambda);
  return {
    pk: publicKey(p * q),
    p,
    q,
    d,
    dp: d % (p - 1n),
    dq: d % (q - 1n),
    qInv: modInv(q, p),
  };
}

function checkUnit(x: unknown, n: bigint, what: string): asserts x is bigint {
  checkRange(x, 1n, n, what);
  if (gcd(x, n) !== 1n) throw new BlindfoldError('ERR_INVALID_ARGUMENT', `${what} is not a unit`);
}

export const rsa: HomomorphicScheme<
  RsaPublicKey,
  RsaSecretKey,
  RsaCiphertext,
  RsaPlaintext,
  RsaShare,
  RsaBlind
> = {
  id: ID,
  deterministic: true,
  supportsObliviousSampling: true,

  /** FIPS 186-5 A.1.3 in spirit: gcd(e, p − 1) = 1, |p − q| large, |n| exactly `bits`. */
  generateKeyPair(opts?: IntegerKeygenOptions): KeyPair<RsaPublicKey, RsaSecretKey> {
    const { p, q } = generatePrimePair(opts, (x) => gcd(RSA_E, x - 1n) === 1n);
    const sk = secretKey(p, q);
    return { publicKey: sk.pk, secretKey: sk };
  },

  publicKeyOf(sk: RsaSecretKey): RsaPublicKey {
    return sk.pk;
  },

  /** m^e mod n. Deterministic: the rng is not used (module comment). */
  encrypt(pk: RsaPublicKey, m: RsaPlaintext, _rng?: Rng): RsaCiphertext {
    checkUnit(m, pk.n, 'rsa plaintext');
    return modPow(m, pk.e, pk.n);
  },

  /**
   * RFC 8017 §5.1.2 (RSADP) with the CRT, exponent blinding d_p + k·(p − 1) (int-common.ts), and
   * a final m^e = c check so that a computation fault can never release a value that reveals a
   * factor (Boneh–DeMillo–Lipton 1997).
   */
  decrypt(sk: RsaSecretKey, c: RsaCiphertext): RsaPlaintext {
    const { n } = sk.pk;
    checkRange(c, 1n, n, 'rsa ciphertext');
    if (c % sk.p === 0n || c % sk.q === 0n) throw decryptFailed();
    const mp = modPow(c % sk.p, sk.dp + exponentBlind() * (sk.p - 1n), sk.p);
    const mq = modPow(c % sk.q, sk.dq + exponentBlind() * (sk.q - 1n), sk.q);
    const m = mq + sk.q * mod((mp - mq) * sk.qInv, sk.p);
    if (modPow(m, sk.pk.e, n) !== c) {
      throw new BlindfoldError('ERR_INTERNAL', 'rsa decryption self-check failed');
    }
    return m;
  },

  combine(pk: RsaPublicKey, a: RsaCiphertext, b: RsaCiphertext): RsaCiphertext {
    return (a * b) % pk.n;
  },

  uncombine(pk: RsaPublicKey, a: RsaCiphertext, b: RsaCiphertext): RsaCiphertext {
    return (a * modInv(b, pk.n)) % pk.n;
  },

  /** c · m^e mod n = Enc(a·m). */
  combinePlain(pk: RsaPublicKey, c: RsaCiphertext, m: RsaPlaintext): RsaCiphertext {
    checkUnit(m, pk.n, 'rsa plaintext');
    return (c * modPow(m, pk.e, pk.n)) % pk.n;
  },

  /**
   * The identity: RSA encryption is deterministic, so each plaintext has exactly one ciphertext
   * and there is no other randomness to refresh (`deterministic` is true; module comment).
   */
  rerandomize(_pk: RsaPublicKey, c: RsaCiphertext, _rng?: Rng): RsaCiphertext {
    return c;
  },

  /**
   * A uniform unit u. It is Enc(u^d), and computing u^d is exactly what only the key holder can
   * do, so its plaintext is uniform and unknown to the caller (SPEC.md §3.5).
   */
  sampleUnknown(pk: RsaPublicKey, rng: Rng = systemRng): RsaCiphertext {
    return randomUnit(pk.n, rng);
  },

  op(pk: RsaPublicKey, a: RsaPlaintext, b: RsaPlaintext): RsaPlaintext {
    return (a * b) % pk.n;
  },

  inv(pk: RsaPublicKey, a: RsaPlaintext): RsaPlaintext {
    return modInv(a, pk.n);
  },

  identity(_pk: RsaPublicKey): RsaPlaintext {
    return 1n;
  },

  /** A secret-sized plaintext: uniform in [2, 2^256) (SPEC.md §3.3; never the identity 1). */
  randomPlaintext(_pk: RsaPublicKey, rng: Rng = systemRng): RsaPlaintext {
    return randomSecret(rng, 2n);
  },

  /** 32 bytes of deriveKey(seed, "scheme/rsa/plaintext", ·, 32), retried below 2. */
  plaintextFromSeed(_pk: RsaPublicKey, seed: Uint8Array): RsaPlaintext {
    return secretFromSeed(seed, `scheme/${ID}/plaintext`, 2n);
  },

  equalPlaintext(a: RsaPlaintext, b: RsaPlaintext): boolean {
    const len = Math.max(byteLength(a), byteLength(b), 1);
    return equalBytes(bigToBytes(a, len), bigToBytes(b, len));
  },

  /** 32 bytes of deriveKey(seed, "scheme/rsa/share", ·, 32), retried below 2. */
  shareFromSeed(_pk: RsaPublicKey, seed: Uint8Array): RsaShare {
    return secretFromSeed(seed, `scheme/${ID}/share`, 2n);
  },

  randomShare(_pk: RsaPublicKey, rng: Rng = systemRng): RsaShare {
    return randomSecret(rng, 2n);
  },

  applyShare(pk: RsaPublicKey, x: RsaPlaintext, q: RsaShare): RsaPlaintext {
    return (x * q) % pk.n;
  },

  /** C · Z^e for a fresh uniform unit Z: encrypts M·Z, a uniform unit to the key holder. */
  blind(
    pk: RsaPublicKey,
    c: RsaCiphertext,
    rng: Rng = systemRng,
  ): BlindResult<RsaCiphertext, RsaBlind> {
    const z = randomUnit(pk.n, rng);
    return { ciphertext: (c * modPow(z, pk.e, pk.n)) % pk.n, blind: { z } };
  },

  unblind(pk: RsaPublicKey, b: RsaBlind, y: RsaPlaintext): RsaPlaintext {
    return (y * modInv(b.z, pk.n)) % pk.n;
  },

  wipeBlind(b: RsaBlind): void {
    b.z = 0n;
  },

  encodePublicKey(pk: RsaPublicKey): Uint8Array {
    return concat(encodeModulus(pk.n), u32be(Number(pk.e)));
  },

  decodePublicKey(b: Uint8Array): RsaPublicKey {
    const { n, end } = decodeModulus(b, 'rsa public key');
    if (b.length !== end + 4) throw decodeError('rsa public key', 'expected u32 exponent at end');
    if (BigInt(readU32be(b, end)) !== RSA_E) {
      throw new BlindfoldError('ERR_PARAMS', 'rsa public key: e must be 65537');
    }
    return publicKey(n);
  },

  encodeSecretKey(sk: RsaSecretKey): Uint8Array {
    return encodeFactors(sk.p, sk.q);
  },

  decodeSecretKey(b: Uint8Array): RsaSecretKey {
    const { p, q } = decodeFactors(b, 'rsa secret key');
    return secretKey(p, q);
  },

  encodeCiphertext(pk: RsaPublicKey, c: RsaCiphertext): Uint8Array {
    checkUnit(c, pk.n, 'rsa ciphertext');
    return encodeInt(c, pk.nBytes);
  },

  /** |n| bytes, a unit of Z_n. */
  decodeCiphertext(pk: RsaPublicKey, b: Uint8Array): RsaCiphertext {
    const c = decodeFixed(b, pk.nBytes, 'rsa ciphertext');
    if (!isUnit(c, pk.n)) throw decodeError('rsa ciphertext', 'not a unit of Z_n');
    return c;
  },

  encodePlaintext(pk: RsaPublicKey, m: RsaPlaintext): Uint8Array {
    checkUnit(m, pk.n, 'rsa plaintext');
    return encodeInt(m, pk.nBytes);
  },

  /** |n| bytes, a unit of Z_n. */
  decodePlaintext(pk: RsaPublicKey, b: Uint8Array): RsaPlaintext {
    const m = decodeFixed(b, pk.nBytes, 'rsa plaintext');
    if (!isUnit(m, pk.n)) throw decodeError('rsa plaintext', 'not a unit of Z_n');
    return m;
  },

  encodeShare(pk: RsaPublicKey, q: RsaShare): Uint8Array {
    if (typeof q !== 'bigint' || !isSecretSized(q, 2n)) {
      throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'rsa share out of range');
    }
    return encodeInt(q, pk.nBytes);
  },

  /** |n| bytes holding an integer in [2, 2^256); 1 is the neutral share (ERR_IDENTITY). */
  decodeShare(pk: RsaPublicKey, b: Uint8Array): RsaShare {
    const q = decodeFixed(b, pk.nBytes, 'rsa share');
    if (q === 1n) throw new BlindfoldError('ERR_IDENTITY', 'invalid rsa share: one');
    if (!isSecretSized(q, 2n)) throw decodeError('rsa share', 'not in [2, 2^256)');
    return q;
  },

  /** S = M·Q as an integer (< 2^512), 64 bytes big-endian (SPEC.md §3.3). */
  secretBytes(_pk: RsaPublicKey, s: RsaPlaintext): Uint8Array {
    return itemSecretBytes(s);
  },

  fingerprint(pk: RsaPublicKey): Uint8Array {
    return fingerprintOf(ID, rsa.encodePublicKey(pk));
  },
};
