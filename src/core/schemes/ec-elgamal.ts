/**
 * EC-ElGamal over ristretto255: Blindfold's default homomorphic scheme (SPEC.md §3.2).
 *
 *   secret key   d, a nonzero scalar          public key   D = d·G (never the identity)
 *   Enc(M; k)    (c1, c2) = (k·G, M + k·D)    Dec          M = c2 − d·c1
 *   ⊕ on plaintexts is point addition; on ciphertexts, componentwise addition.
 *
 * Plaintexts are group elements, not numbers: Blindfold never needs to recover a discrete log,
 * only to derive keys from points. The manager's item share q acts in the exponent, q·X, and a
 * holder blinds a ciphertext multiplicatively, (ρ·c1, ρ·c2) = Enc(ρ·M): the key holder can then
 * only return q·ρ·M, and the holder removes ρ. The manager never returns a plain decryption
 * (SPEC.md §3.2, "the trap designed out", DESIGN.md §4).
 *
 * Encodings (SPEC.md §3.2): public key 32 bytes (D), secret key 32 bytes (d, little-endian,
 * canonical, nonzero), ciphertext 64 bytes (c1 ‖ c2), plaintext 32 bytes, share 32 bytes (q,
 * canonical, nonzero). Every point in every encoding MUST be a canonical ristretto255 encoding
 * (RFC 9496 §4.3.1) and MUST NOT be the identity; encoders refuse to write what decoders refuse.
 */
import { concat, equalBytes, u8, utf8, zeroize } from '../bytes.ts';
import { BlindfoldError } from '../errors.ts';
import {
  add,
  decodePoint,
  decodeScalar,
  encodePoint,
  encodeScalar,
  IDENTITY,
  isIdentity,
  isZeroScalar,
  mul,
  mulBase,
  negate,
  POINT_BYTES,
  type Point,
  pointFromUniform,
  randomPoint,
  randomScalar,
  type Scalar,
  scalarFromWide,
  scalarInvert,
  scalarMul,
  sub,
  WIDE_BYTES,
} from '../group.ts';
import { deriveKey, sha256 } from '../hash.ts';
import { type Rng, systemRng } from '../random.ts';
import type { BlindResult, HomomorphicScheme, KeyPair } from './scheme.ts';

export type EcPublicKey = Point;
export type EcSecretKey = Scalar;
export interface EcCiphertext {
  readonly c1: Point;
  readonly c2: Point;
}
export type EcPlaintext = Point;
export type EcShare = Scalar;
/** The blinding factor ρ; `wipeBlind` zeroes it. */
export type EcBlind = Scalar;

export const EC_CIPHERTEXT_BYTES = 2 * POINT_BYTES;

/**
 * Blinding factors ρ with their inverses, made BLIND_BATCH at a time (issue #9). Unblinding needs
 * ρ⁻¹, and one inversion in Z_ℓ costs ~38 µs in libsodium's WASM build (a third of a scalar
 * multiplication, ~7 % of an appliance's hom2 recovery); Montgomery's batch inversion gives n
 * inverses for one inversion and 3(n − 1) products (~0.7 µs each). Only for fresh randomness
 * (the system RNG): a seeded stream (test vectors, hom2-opt's β_A) draws ρ as before, so the
 * bytes it produces do not change.
 *
 * A pair is handed out once and forgotten here; its inverse stays attached to that ρ (`inverses`)
 * until unblinding takes it or `wipeBlind` zeroes both. What waits in the pool is future
 * blinding factors, as secret as the ρ of a request in flight and held by the same process.
 */
const BLIND_BATCH = 32;
const spare: { rho: Scalar; inv: Scalar }[] = [];
const inverses = new WeakMap<Uint8Array, Scalar>();

function pooledBlind(): Scalar {
  if (spare.length === 0) {
    const rhos = Array.from({ length: BLIND_BATCH }, () => randomScalar());
    // prefix[i] = ρ_0 · … · ρ_i; then walk back from (ρ_0 · … · ρ_{n−1})⁻¹.
    const prefix: Scalar[] = [rhos[0]!];
    for (let i = 1; i < rhos.length; i++) prefix.push(scalarMul(prefix[i - 1]!, rhos[i]!));
    let acc = scalarInvert(prefix[rhos.length - 1]!);
    for (let i = rhos.length - 1; i >= 0; i--) {
      const inv = i === 0 ? acc : scalarMul(acc, prefix[i - 1]!);
      if (i > 0) {
        const next = scalarMul(acc, rhos[i]!);
        zeroize(acc);
        acc = next;
      }
      spare.push({ rho: rhos[i]!, inv });
    }
    zeroize(...prefix.slice(1)); // prefix[0] is ρ_0 itself, now in the pool
  }
  const { rho, inv } = spare.pop()!;
  inverses.set(rho, inv);
  return rho;
}

/** ρ⁻¹: the pooled inverse if ρ came from the pool (taken once), else computed. */
function inverseOfBlind(rho: Scalar): Scalar {
  const inv = inverses.get(rho);
  if (inv === undefined) return scalarInvert(rho);
  inverses.delete(rho);
  return inv;
}

const ID = 'ec-elgamal';
const FINGERPRINT_LABEL = utf8(`blindfold/v1/fingerprint/${ID}`);
const SEED_BYTES = 32;

/** Never emit an identity point: decoders would refuse it (module comment). */
function checkedPoint(p: Point, what: string): Uint8Array {
  if (isIdentity(p)) {
    throw new BlindfoldError('ERR_IDENTITY', `cannot encode ${what}: the identity element`);
  }
  return encodePoint(p);
}

function checkSeed(seed: Uint8Array): void {
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_BYTES) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', `seed must be ${SEED_BYTES} bytes`);
  }
}

/**
 * SPEC.md §3.2 seed expansion: wide = deriveKey(seed, label, ctx, 64), where ctx is empty on the
 * first attempt and the single byte i on attempt i = 1, 2, ...; `accept` rejects the degenerate
 * value (probability ~2^-252 per attempt, so in practice there is exactly one attempt).
 */
function fromSeed<T extends Uint8Array>(
  seed: Uint8Array,
  label: string,
  map: (wide: Uint8Array) => T,
  accept: (x: T) => boolean,
): T {
  checkSeed(seed);
  for (let i = 0; i < 256; i++) {
    const wide = deriveKey(seed, label, i === 0 ? new Uint8Array(0) : u8(i), WIDE_BYTES);
    const x = map(wide);
    zeroize(wide);
    if (accept(x)) return x;
  }
  throw new BlindfoldError('ERR_INTERNAL', 'seed expansion failed 256 times');
}

/** k·G and k·D for a fresh nonzero k, wiped after use. */
function freshMask(pk: EcPublicKey, rng: Rng): { kG: Point; kD: Point } {
  const k = randomScalar(rng);
  try {
    return { kG: mulBase(k), kD: mul(k, pk) };
  } finally {
    zeroize(k);
  }
}

export const ecElGamal: HomomorphicScheme<
  EcPublicKey,
  EcSecretKey,
  EcCiphertext,
  EcPlaintext,
  EcShare,
  EcBlind
> = {
  id: ID,
  deterministic: false,
  supportsObliviousSampling: true,

  /** d uniform nonzero, D = d·G. `bits` has no meaning for a fixed group and is ignored. */
  generateKeyPair(opts?: { bits?: number; rng?: Rng }): KeyPair<EcPublicKey, EcSecretKey> {
    const d = randomScalar(opts?.rng ?? systemRng);
    return { publicKey: mulBase(d), secretKey: d };
  },

  publicKeyOf(sk: EcSecretKey): EcPublicKey {
    return mulBase(sk);
  },

  encrypt(pk: EcPublicKey, m: EcPlaintext, rng: Rng = systemRng): EcCiphertext {
    const { kG, kD } = freshMask(pk, rng);
    return { c1: kG, c2: add(m, kD) };
  },

  decrypt(sk: EcSecretKey, c: EcCiphertext): EcPlaintext {
    return sub(c.c2, mul(sk, c.c1));
  },

  combine(_pk: EcPublicKey, a: EcCiphertext, b: EcCiphertext): EcCiphertext {
    return { c1: add(a.c1, b.c1), c2: add(a.c2, b.c2) };
  },

  uncombine(_pk: EcPublicKey, a: EcCiphertext, b: EcCiphertext): EcCiphertext {
    return { c1: sub(a.c1, b.c1), c2: sub(a.c2, b.c2) };
  },

  combinePlain(_pk: EcPublicKey, c: EcCiphertext, b: EcPlaintext): EcCiphertext {
    return { c1: c.c1, c2: add(c.c2, b) };
  },

  /** Adds an encryption of the identity: (c1 + k'·G, c2 + k'·D). */
  rerandomize(pk: EcPublicKey, c: EcCiphertext, rng: Rng = systemRng): EcCiphertext {
    const { kG, kD } = freshMask(pk, rng);
    return { c1: add(c.c1, kG), c2: add(c.c2, kD) };
  },

  /**
   * Two independent uniform points. c1 = k·G for a k nobody knows, so (c1, c2) encrypts
   * R = c2 − d·c1, a uniform point that only the holder of d could compute (SPEC.md §3.5).
   */
  sampleUnknown(_pk: EcPublicKey, rng: Rng = systemRng): EcCiphertext {
    return { c1: randomPoint(rng), c2: randomPoint(rng) };
  },

  op(_pk: EcPublicKey, a: EcPlaintext, b: EcPlaintext): EcPlaintext {
    return add(a, b);
  },

  inv(_pk: EcPublicKey, a: EcPlaintext): EcPlaintext {
    return negate(a);
  },

  identity(_pk: EcPublicKey): EcPlaintext {
    return IDENTITY.slice() as Point;
  },

  randomPlaintext(_pk: EcPublicKey, rng: Rng = systemRng): EcPlaintext {
    return randomPoint(rng);
  },

  /** RFC 9496 §4.3.4 element derivation of deriveKey(seed, "scheme/ec-elgamal/plaintext", ·, 64). */
  plaintextFromSeed(_pk: EcPublicKey, seed: Uint8Array): EcPlaintext {
    return fromSeed(seed, `scheme/${ID}/plaintext`, pointFromUniform, (p) => !isIdentity(p));
  },

  equalPlaintext(a: EcPlaintext, b: EcPlaintext): boolean {
    return equalBytes(a, b);
  },

  /** deriveKey(seed, "scheme/ec-elgamal/share", ·, 64) reduced mod ℓ, never zero. */
  shareFromSeed(_pk: EcPublicKey, seed: Uint8Array): EcShare {
    return fromSeed(seed, `scheme/${ID}/share`, scalarFromWide, (q) => !isZeroScalar(q));
  },

  randomShare(_pk: EcPublicKey, rng: Rng = systemRng): EcShare {
    return randomScalar(rng);
  },

  /** X ⊛ q = q·X (in the exponent: the share never turns into a plaintext offset). */
  applyShare(_pk: EcPublicKey, x: EcPlaintext, q: EcShare): EcPlaintext {
    return mul(q, x);
  },

  /** (ρ·c1, ρ·c2) = Enc(ρ·M) under the same key, for a fresh secret nonzero ρ. */
  blind(
    _pk: EcPublicKey,
    c: EcCiphertext,
    rng: Rng = systemRng,
  ): BlindResult<EcCiphertext, EcBlind> {
    const rho = rng === systemRng ? pooledBlind() : randomScalar(rng);
    return { ciphertext: { c1: mul(rho, c.c1), c2: mul(rho, c.c2) }, blind: rho };
  },

  /** ρ⁻¹·Y: from q·ρ·M back to q·M. */
  unblind(_pk: EcPublicKey, b: EcBlind, y: EcPlaintext): EcPlaintext {
    const rhoInv = inverseOfBlind(b);
    try {
      return mul(rhoInv, y);
    } finally {
      zeroize(rhoInv);
    }
  },

  /** ρ⁻¹ computed once (a scalar inversion costs ~0.6 scalar mults in libsodium's WASM build). */
  unblinder(_pk: EcPublicKey, b: EcBlind): (y: EcPlaintext) => EcPlaintext {
    const rhoInv = inverseOfBlind(b);
    return (y) => mul(rhoInv, y);
  },

  wipeBlind(b: EcBlind): void {
    const inv = inverses.get(b);
    if (inv !== undefined) {
      inverses.delete(b);
      zeroize(inv);
    }
    zeroize(b);
  },

  encodePublicKey(pk: EcPublicKey): Uint8Array {
    return checkedPoint(pk, 'ec-elgamal public key');
  },

  decodePublicKey(b: Uint8Array): EcPublicKey {
    return decodePoint(b, 'ec-elgamal public key');
  },

  encodeSecretKey(sk: EcSecretKey): Uint8Array {
    return encodeScalar(sk);
  },

  decodeSecretKey(b: Uint8Array): EcSecretKey {
    return decodeScalar(b, 'ec-elgamal secret key');
  },

  encodeCiphertext(_pk: EcPublicKey, c: EcCiphertext): Uint8Array {
    return concat(
      checkedPoint(c.c1, 'ec-elgamal ciphertext'),
      checkedPoint(c.c2, 'ec-elgamal ciphertext'),
    );
  },

  decodeCiphertext(_pk: EcPublicKey, b: Uint8Array): EcCiphertext {
    if (!(b instanceof Uint8Array) || b.length !== EC_CIPHERTEXT_BYTES) {
      throw new BlindfoldError(
        'ERR_DECODE',
        `invalid ec-elgamal ciphertext: expected ${EC_CIPHERTEXT_BYTES} bytes`,
      );
    }
    return {
      c1: decodePoint(b.subarray(0, POINT_BYTES), 'ec-elgamal ciphertext c1'),
      c2: decodePoint(b.subarray(POINT_BYTES), 'ec-elgamal ciphertext c2'),
    };
  },

  encodePlaintext(_pk: EcPublicKey, m: EcPlaintext): Uint8Array {
    return checkedPoint(m, 'ec-elgamal plaintext');
  },

  decodePlaintext(_pk: EcPublicKey, b: Uint8Array): EcPlaintext {
    return decodePoint(b, 'ec-elgamal plaintext');
  },

  encodeShare(_pk: EcPublicKey, q: EcShare): Uint8Array {
    return encodeScalar(q);
  },

  /** The item secret's bytes: its 32-byte point encoding, independent of the key pair. */
  secretBytes(_pk: EcPublicKey, s: EcPlaintext): Uint8Array {
    return checkedPoint(s, 'ec-elgamal item secret');
  },

  decodeShare(_pk: EcPublicKey, b: Uint8Array): EcShare {
    return decodeScalar(b, 'ec-elgamal share');
  },

  /** SHA-256("blindfold/v1/fingerprint/ec-elgamal" ‖ 0x00 ‖ D). */
  transfer: {
    blind(pk: EcPublicKey, c: EcCiphertext, rng: Rng = systemRng) {
      return ecElGamal.blind(pk, c, rng);
    },
    /** Dec_A(C') = ρ·M, encrypted afresh under the target key. */
    reencrypt(sk: EcSecretKey, pkTarget: EcPublicKey, c: EcCiphertext, rng: Rng = systemRng) {
      return ecElGamal.encrypt(pkTarget, ecElGamal.decrypt(sk, c), rng);
    },
    /** (ρ⁻¹·c1, ρ⁻¹·c2) = Enc_B(M), then fresh randomness so the key holder cannot link it. */
    unblindCiphertext(pkTarget: EcPublicKey, b: EcBlind, c: EcCiphertext, rng: Rng = systemRng) {
      const inv = inverseOfBlind(b);
      try {
        return ecElGamal.rerandomize(pkTarget, { c1: mul(inv, c.c1), c2: mul(inv, c.c2) }, rng);
      } finally {
        zeroize(inv);
      }
    },
  },

  fingerprint(pk: EcPublicKey): Uint8Array {
    return sha256(FINGERPRINT_LABEL, u8(0), encodePoint(pk));
  },
};

// ---------------------------------------------------------------------------------------------
// The manager's answers from encodings (issue #9: no repeated decoding)
// ---------------------------------------------------------------------------------------------

/**
 * The bytes as a point if they could be one, unvalidated: 32 bytes and not the identity. What
 * else decodePoint checks (RFC 9496 §4.3.1 Decode: canonical, on the group) libsodium's scalar
 * multiplication and subtraction check themselves, failing on what it would refuse.
 */
function unvalidated(b: Uint8Array): Point | undefined {
  return b instanceof Uint8Array && b.length === POINT_BYTES && !isIdentity(b as Point)
    ? (b as Point)
    : undefined;
}

/**
 * `applyShare(decrypt(sk, decodeCiphertext(blinded)), q)`, the manager's hom2 answer (SPEC.md
 * §5.2), with each point decoded once. Validating c1 and c2 before the multiplication and the
 * subtraction that decode them anyway cost two decodes of the three a recovery's manager side does
 * beyond its multiplications (7.7 µs each in libsodium's WASM build, PERFORMANCE.md perf9). Same
 * result, and, when anything fails, the same error: the separate steps are then run to name it.
 */
export function answerFromEncoded(
  pk: EcPublicKey,
  sk: EcSecretKey,
  blinded: Uint8Array,
  q: EcShare,
): EcPlaintext {
  if (blinded instanceof Uint8Array && blinded.length === EC_CIPHERTEXT_BYTES) {
    const c1 = unvalidated(blinded.subarray(0, POINT_BYTES));
    const c2 = unvalidated(blinded.subarray(POINT_BYTES));
    if (c1 && c2) {
      try {
        return mul(q, sub(c2, mul(sk, c1)));
      } catch {
        // An encoding libsodium refused, or an identity on the way: named below.
      }
    }
  }
  return ecElGamal.applyShare(
    pk,
    ecElGamal.decrypt(sk, ecElGamal.decodeCiphertext(pk, blinded)),
    q,
  );
}

/**
 * `f(decodePlaintext(y))` for an `f` whose first step multiplies y by a scalar, with y decoded once:
 * by that multiplication, which refuses what `decodePlaintext` refuses. Same result and, when
 * anything fails, the same error: `f` then runs again on the separately decoded y to name it, so
 * `f` must not consume anything it needs on a second run.
 */
export function withEncodedPlaintext<T>(
  pk: EcPublicKey,
  y: Uint8Array,
  f: (p: EcPlaintext) => T,
): T {
  const p = unvalidated(y);
  if (p) {
    try {
      return f(p);
    } catch {
      // An encoding libsodium refused, or an identity on the way: named below.
    }
  }
  return f(ecElGamal.decodePlaintext(pk, y));
}

/**
 * `applyShare(decodePlaintext(x), q)`, the manager's hom2-opt answer q·X_A (SPEC.md §5.3), with X_A
 * decoded once (by the multiplication). Same result and, when anything fails, the same error.
 */
export function shareOfEncoded(pk: EcPublicKey, x: Uint8Array, q: EcShare): EcPlaintext {
  return withEncodedPlaintext(pk, x, (p) => ecElGamal.applyShare(pk, p, q));
}
