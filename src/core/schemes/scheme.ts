/**
 * The one interface behind which every homomorphic scheme sits (SPEC.md §3).
 *
 * The seed asks for "any PKI technique with partially homomorphic behaviour" and writes its
 * generalized operator as a middle dot; we write it ⊕ and its inverse ⊖. Each scheme fixes:
 *
 *   scheme        plaintext group (⊕)              share action (apply)     blinding
 *   ec-elgamal    ristretto255 points, addition    q·X, q a scalar          ρ·C (scalar, multiplicative)
 *   paillier      Z_n, addition mod n              X + Q mod n              Enc(Z) added
 *   rsa           Z_n^*, multiplication mod n      X · Q mod n              Enc(Z) multiplied
 *   gm            {0,1}^256, XOR                   X XOR Q                  Enc(Z) XORed
 *
 * The protocol layer (manager, appliance, blinder) sees only this interface. The share action and
 * the blinding are separate from ⊕ because for EC-ElGamal the manager's item share acts in the
 * exponent (SPEC.md §3.2, "the trap designed out"): the manager never returns a plain decryption.
 *
 * Contract, checked by test/schemes.property.test.ts for every scheme:
 *   decrypt(combine(encrypt(a), encrypt(b))) = op(a, b)
 *   decrypt(combinePlain(encrypt(a), b)) = op(a, b)
 *   decrypt(rerandomize(c)) = decrypt(c), and rerandomize(c) ≠ c unless `deterministic`
 *   unblind(β, applyShare(decrypt(blind(c).c), q)) = applyShare(decrypt(c), q)
 *   decodeX(encodeX(x)) = x, and decoders reject malformed input with ERR_DECODE / ERR_PARAMS /
 *   ERR_IDENTITY.
 *
 * Object types are opaque to callers: only values produced by the same scheme (and key) may be
 * passed back in. All randomness comes from the optional `rng` (see random.ts).
 */
import type { Rng } from '../random.ts';

export type SchemeId = 'ec-elgamal' | 'paillier' | 'rsa' | 'gm';

/** Scheme ids as they appear in binary encodings (SPEC.md §2.2). */
export const SCHEME_CODES: Record<SchemeId, number> = {
  'ec-elgamal': 1,
  paillier: 2,
  rsa: 3,
  gm: 4,
};

export interface KeyPair<PK, SK> {
  publicKey: PK;
  secretKey: SK;
}

export interface BlindResult<CT, BL> {
  /** The blinded ciphertext to send; it looks uniformly random to the key holder. */
  ciphertext: CT;
  /** The caller's secret unblinding state. Wipe it with `scheme.wipeBlind` after use. */
  blind: BL;
}

/**
 * Re-concealment (SPEC.md §5.5 and §5.7): the holder of Enc_A(M) blinds it, the key holder
 * decrypts the blinded plaintext and re-encrypts it under another public key B, and the holder of
 * the blinding removes it from that new ciphertext. Nobody sees M. Absent where a scheme cannot do
 * it (rsa: the product M·Z wraps modulo the first modulus and cannot be undone under another).
 */
export interface TransferOps<PK, SK, CT, BL> {
  blind(pk: PK, c: CT, rng?: Rng): BlindResult<CT, BL>;
  reencrypt(sk: SK, pkTarget: PK, c: CT, rng?: Rng): CT;
  unblindCiphertext(pkTarget: PK, b: BL, c: CT, rng?: Rng): CT;
}

// biome-ignore lint/suspicious/noExplicitAny: the registry holds schemes of different types
export interface HomomorphicScheme<PK = any, SK = any, CT = any, PT = any, SH = any, BL = any> {
  readonly id: SchemeId;
  /** True if encryption is deterministic (RSA): `rerandomize` is then the identity. */
  readonly deterministic: boolean;
  /** Which protocol shapes the scheme supports (SPEC.md §5: which modes run on which scheme). */
  readonly supportsObliviousSampling: boolean;

  generateKeyPair(opts?: {
    bits?: number;
    rng?: Rng;
    /** Faster prime generation where the platform has it (node:crypto), integer schemes only. */
    generatePrime?: (bits: number) => bigint;
  }): KeyPair<PK, SK>;
  publicKeyOf(sk: SK): PK;

  encrypt(pk: PK, m: PT, rng?: Rng): CT;
  decrypt(sk: SK, c: CT): PT;

  /** The operator on ciphertexts: Enc(a) ⊕ Enc(b) = Enc(a ⊕ b). */
  combine(pk: PK, a: CT, b: CT): CT;
  /** Its inverse: Enc(a) ⊖ Enc(b) = Enc(a ⊖ b). */
  uncombine(pk: PK, a: CT, b: CT): CT;
  /** Ciphertext ⊕ known plaintext: Enc(a) ⊕ b = Enc(a ⊕ b) (no fresh randomness). */
  combinePlain(pk: PK, c: CT, b: PT): CT;
  /** Fresh randomness, same plaintext. The identity for deterministic schemes. */
  rerandomize(pk: PK, c: CT, rng?: Rng): CT;
  /**
   * An encryption of a uniformly random plaintext that nobody, not even the caller, knows
   * (SPEC.md §3.5): used so that the blinders' values R_j are never in plain, even at setup.
   */
  sampleUnknown(pk: PK, rng?: Rng): CT;

  /** The operator on plaintexts, its inverse, and its neutral element. */
  op(pk: PK, a: PT, b: PT): PT;
  inv(pk: PK, a: PT): PT;
  identity(pk: PK): PT;
  randomPlaintext(pk: PK, rng?: Rng): PT;
  /**
   * Maps a 32-byte uniform seed to a secret plaintext (a master key), never the identity, by
   * deriveKey(seed, "scheme/<id>/plaintext", ...). For paillier and rsa the result is an integer
   * below 2^256 (not uniform mod n) so that M ⊛ Q never wraps and every appliance's modulus yields
   * the same item secret (SPEC.md §3.3).
   */
  plaintextFromSeed(pk: PK, seed: Uint8Array): PT;
  equalPlaintext(a: PT, b: PT): boolean;

  /**
   * Maps a 32-byte uniform seed (a PRF output) to an item share (SPEC.md §4.2), expanding it
   * with deriveKey(seed, "scheme/<id>/share", ...). Never the neutral share.
   */
  shareFromSeed(pk: PK, seed: Uint8Array): SH;
  randomShare(pk: PK, rng?: Rng): SH;
  /** The share action x ⊛ q that turns the master into an item secret (SPEC.md §4.2). */
  applyShare(pk: PK, x: PT, q: SH): PT;
  /** Blind a ciphertext with fresh secret randomness before it leaves its holder. */
  blind(pk: PK, c: CT, rng?: Rng): BlindResult<CT, BL>;
  /** Undo `blind` on a plaintext that went through `applyShare`. */
  unblind(pk: PK, b: BL, y: PT): PT;
  /**
   * Optional: `unblind` for a blind that is used many times (hom2-opt's β_A, SPEC.md §5.3), with
   * the work that depends on the blind alone (an inversion) done once. The function returns
   * exactly `unblind(pk, b, y)`; it holds secret state as long as it is referenced.
   */
  unblinder?(pk: PK, b: BL): (y: PT) => PT;
  wipeBlind(b: BL): void;

  encodePublicKey(pk: PK): Uint8Array;
  /** Checks every parameter (sizes, ranges, canonical form); throws ERR_DECODE or ERR_PARAMS. */
  decodePublicKey(b: Uint8Array): PK;
  encodeSecretKey(sk: SK): Uint8Array;
  decodeSecretKey(b: Uint8Array): SK;
  encodeCiphertext(pk: PK, c: CT): Uint8Array;
  decodeCiphertext(pk: PK, b: Uint8Array): CT;
  encodePlaintext(pk: PK, m: PT): Uint8Array;
  decodePlaintext(pk: PK, b: Uint8Array): PT;
  encodeShare(pk: PK, q: SH): Uint8Array;
  /**
   * The canonical bytes of an item secret S = applyShare(M, Q), IDENTICAL for every key pair of
   * the scheme (so that every appliance of a cluster derives the same item key whatever its own
   * modulus): ec-elgamal and gm: the plaintext encoding (32 bytes); paillier and rsa: the
   * integer as 64 bytes big-endian (secret plaintexts and shares are < 2^256, see SPEC.md §3.3,
   * so M + Q and M · Q never wrap modulo n).
   */
  secretBytes(pk: PK, s: PT): Uint8Array;
  decodeShare(pk: PK, b: Uint8Array): SH;
  /** Public-key fingerprint: SHA-256 of the encoding (binds tickets and certificates). */
  fingerprint(pk: PK): Uint8Array;

  readonly transfer?: TransferOps<PK, SK, CT, BL>;
}
