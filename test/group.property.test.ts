/**
 * Property tests for src/core/group.ts (ristretto255 over libsodium), cross-checked against an
 * independent implementation (@noble/curves), and for the EC-ElGamal scheme built on it
 * (src/core/schemes/ec-elgamal.ts): homomorphisms, blinding, encodings and their rejections.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ristretto255, ristretto255_hasher } from '@noble/curves/ed25519.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { concat, equalBytes, toHex, u8, utf8 } from '../src/core/bytes.ts';
import { type ErrorCode, isBlindfoldError } from '../src/core/errors.ts';
import {
  add,
  BASE,
  decodePoint,
  decodeScalar,
  encodePoint,
  encodeScalar,
  IDENTITY,
  isIdentity,
  L,
  mul,
  mulBase,
  negate,
  type Point,
  pointFromUniform,
  randomPoint,
  randomScalar,
  type Scalar,
  scalarAdd,
  scalarFromBigInt,
  scalarFromWide,
  scalarInvert,
  scalarMul,
  scalarNegate,
  scalarSub,
  scalarToBigInt,
  sub,
} from '../src/core/group.ts';
import { deriveKey } from '../src/core/hash.ts';
import { homMode } from '../src/core/protocol.ts';
import { type Rng, seededRng } from '../src/core/random.ts';
import {
  answerFromEncoded,
  type EcCiphertext,
  ecElGamal as S,
  shareOfEncoded,
  withEncodedPlaintext,
} from '../src/core/schemes/ec-elgamal.ts';
import { sodium } from '../src/core/sodium.ts';

const NP = ristretto255.Point;
const RUNS = { numRuns: 60 };

const throwsCode = (f: () => unknown, code: ErrorCode, msg?: string) =>
  assert.throws(f, (e) => isBlindfoldError(e, code), msg);

const leBig = (b: Uint8Array) => {
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  return v;
};

// Arbitraries: scalars as bigints in [1, ℓ), points as element derivations of 64 random bytes
// (nobody knows their discrete logs, unlike s·B).
const arbNonzero = fc.bigInt({ min: 1n, max: L - 1n });
const arbWide = fc.uint8Array({ minLength: 64, maxLength: 64 });
const arbPoint = arbWide.map((w) => pointFromUniform(w)).filter((p) => !isIdentity(p));
const arbSeed = fc.uint8Array({ minLength: 32, maxLength: 32 });
const noble = (p: Point) => NP.fromBytes(p);

describe('group: cross-check with @noble/curves', () => {
  test('mulBase(s) = s·B', () => {
    fc.assert(
      fc.property(arbNonzero, (s) => {
        assert.equal(toHex(mulBase(scalarFromBigInt(s))), NP.BASE.multiply(s).toHex());
      }),
      RUNS,
    );
  });

  test('mul(s, P) = s·P for P of unknown discrete log', () => {
    fc.assert(
      fc.property(arbNonzero, arbPoint, (s, p) => {
        assert.equal(toHex(mul(scalarFromBigInt(s), p)), noble(p).multiply(s).toHex());
      }),
      RUNS,
    );
  });

  test('pointFromUniform = RFC 9496 §4.3.4 element derivation (noble deriveToCurve)', () => {
    fc.assert(
      fc.property(arbWide, (w) => {
        assert.equal(toHex(pointFromUniform(w)), ristretto255_hasher.deriveToCurve!(w).toHex());
      }),
      RUNS,
    );
  });

  test('add, sub, negate', () => {
    fc.assert(
      fc.property(arbPoint, arbPoint, (p, q) => {
        assert.equal(toHex(add(p, q)), noble(p).add(noble(q)).toHex());
        assert.equal(toHex(sub(p, q)), noble(p).subtract(noble(q)).toHex());
        assert.equal(toHex(negate(p)), noble(p).negate().toHex());
        assert.ok(isIdentity(add(p, negate(p))));
        assert.deepEqual(add(p, IDENTITY), p);
      }),
      RUNS,
    );
  });

  test('scalar arithmetic mod ℓ, inversion, reduction of 64 bytes', () => {
    fc.assert(
      fc.property(arbNonzero, arbNonzero, arbWide, (a, b, w) => {
        const sa = scalarFromBigInt(a);
        const sb = scalarFromBigInt(b);
        assert.equal(scalarToBigInt(scalarAdd(sa, sb)), (a + b) % L);
        assert.equal(scalarToBigInt(scalarSub(sa, sb)), (((a - b) % L) + L) % L);
        assert.equal(scalarToBigInt(scalarMul(sa, sb)), (a * b) % L);
        assert.equal(scalarToBigInt(scalarNegate(sa)), (L - a) % L);
        assert.equal(scalarToBigInt(scalarInvert(sa)), NP.Fn.inv(a));
        assert.equal(scalarToBigInt(scalarMul(sa, scalarInvert(sa))), 1n);
        assert.equal(scalarToBigInt(scalarFromWide(w)), leBig(w) % L);
      }),
      RUNS,
    );
  });

  test('s·(t·P) = (s·t)·P and (s + t)·B = s·B + t·B', () => {
    fc.assert(
      fc.property(arbNonzero, arbNonzero, arbPoint, (s, t, p) => {
        const ss = scalarFromBigInt(s);
        const st = scalarFromBigInt(t);
        assert.deepEqual(mul(ss, mul(st, p)), mul(scalarMul(ss, st), p));
        if ((s + t) % L !== 0n) {
          assert.deepEqual(mulBase(scalarAdd(ss, st)), add(mulBase(ss), mulBase(st)));
        }
      }),
      RUNS,
    );
  });
});

describe('group: encodings', () => {
  test('decodePoint(encodePoint(P)) = P; decodeScalar(encodeScalar(s)) = s', () => {
    fc.assert(
      fc.property(arbPoint, arbNonzero, (p, s) => {
        assert.deepEqual(decodePoint(encodePoint(p)), p);
        const sc = scalarFromBigInt(s);
        assert.deepEqual(decodeScalar(encodeScalar(sc)), sc);
      }),
      RUNS,
    );
  });

  test('decodePoint agrees with noble on random 32-byte strings (and refuses the identity)', () => {
    let accepted = 0;
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (b) => {
        let nobleOk = true;
        try {
          NP.fromBytes(b);
        } catch {
          nobleOk = false;
        }
        if (nobleOk) {
          accepted++;
          assert.deepEqual(decodePoint(b), b);
        } else {
          throwsCode(() => decodePoint(b), 'ERR_DECODE', toHex(b));
        }
      }),
      { numRuns: 400 },
    );
    // A random string decodes with probability ~1/8 (sign bit, top bit, squareness): the test
    // must have seen both outcomes to mean anything.
    assert.ok(accepted > 0 && accepted < 400, `accepted ${accepted}`);
    throwsCode(() => decodePoint(new Uint8Array(32)), 'ERR_IDENTITY');
  });

  test('decodePoint: wrong lengths, and the top bit set on a valid encoding', () => {
    throwsCode(() => decodePoint(new Uint8Array(31)), 'ERR_DECODE');
    throwsCode(() => decodePoint(new Uint8Array(33)), 'ERR_DECODE');
    throwsCode(() => decodePoint(concat(BASE, u8(0))), 'ERR_DECODE');
    const high = BASE.slice();
    high[31]! |= 0x80;
    throwsCode(() => decodePoint(high), 'ERR_DECODE');
  });

  test('decodeScalar: canonical < ℓ, nonzero unless allowed, 32 bytes', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: L, max: 2n ** 256n - 1n }), (x) => {
        const b = new Uint8Array(32);
        let v = x;
        for (let i = 0; i < 32; i++, v >>= 8n) b[i] = Number(v & 0xffn);
        throwsCode(() => decodeScalar(b), 'ERR_DECODE', x.toString(16));
      }),
      RUNS,
    );
    const lMinus1 = scalarFromBigInt(L - 1n);
    assert.deepEqual(decodeScalar(lMinus1), lMinus1);
    const lBytes = lMinus1.slice();
    lBytes[0]! += 1; // ℓ itself (ℓ - 1 ends in 0xec)
    throwsCode(() => decodeScalar(lBytes), 'ERR_DECODE');
    throwsCode(() => decodeScalar(new Uint8Array(32)), 'ERR_IDENTITY');
    assert.deepEqual(decodeScalar(new Uint8Array(32), 'scalar', true), new Uint8Array(32));
    throwsCode(() => decodeScalar(new Uint8Array(31)), 'ERR_DECODE');
    throwsCode(() => decodeScalar(new Uint8Array(64)), 'ERR_DECODE');
  });

  test('the identity: libsodium refuses to output it from scalar multiplication', () => {
    const zero = new Uint8Array(32) as Scalar;
    throwsCode(() => mulBase(zero), 'ERR_IDENTITY');
    throwsCode(() => mul(zero, BASE), 'ERR_IDENTITY');
    throwsCode(() => mul(scalarFromBigInt(7n), IDENTITY), 'ERR_IDENTITY');
    throwsCode(() => mulBase(scalarFromBigInt(L)), 'ERR_IDENTITY'); // ℓ ≡ 0
    throwsCode(() => scalarInvert(zero), 'ERR_IDENTITY');
    assert.deepEqual(negate(IDENTITY), IDENTITY);
  });

  test('libsodium behaviours group.ts relies on (documented in its header)', () => {
    const invalid = new Uint8Array(32).fill(0xff);
    assert.equal(sodium.crypto_core_ristretto255_is_valid_point(IDENTITY), true);
    assert.throws(() => sodium.crypto_core_ristretto255_add(invalid, BASE));
    // An invalid input point fails like an identity result: hence a Point must be decoded first.
    assert.throws(() => sodium.crypto_scalarmult_ristretto255(scalarFromBigInt(1n), invalid));
    // Bit 255 of the scalar is ignored (2^255 acts as 0), not reduced mod ℓ.
    const top = new Uint8Array(32);
    top[31] = 0x80;
    assert.throws(() => sodium.crypto_scalarmult_ristretto255_base(top));
    // add and sub return the identity as 32 zero bytes rather than failing.
    assert.ok(isIdentity(sodium.crypto_core_ristretto255_sub(BASE, BASE) as Point));
  });

  test('randomScalar / randomPoint retry on the degenerate value', () => {
    // An rng whose first 64 bytes are zero: reduce(0) = 0 and from_hash(0^64) = identity.
    const zerosThenSeeded = (): Rng => {
      const rest = seededRng(new Uint8Array(32).fill(7));
      let first = true;
      return (n) => {
        if (first) {
          first = false;
          return new Uint8Array(n);
        }
        return rest(n);
      };
    };
    assert.ok(isIdentity(pointFromUniform(new Uint8Array(64))));
    const s = randomScalar(zerosThenSeeded());
    assert.deepEqual(s, scalarFromWide(seededRng(new Uint8Array(32).fill(7))(64)));
    const p = randomPoint(zerosThenSeeded());
    assert.deepEqual(p, pointFromUniform(seededRng(new Uint8Array(32).fill(7))(64)));
  });
});

// ---------------------------------------------------------------------------------------------
// EC-ElGamal
// ---------------------------------------------------------------------------------------------

const keys = S.generateKeyPair({ rng: seededRng(new Uint8Array(32).fill(1)) });
const pk = keys.publicKey;
const sk = keys.secretKey;
const arbPt = arbPoint; // plaintexts are points
const arbShare = arbNonzero.map((q) => scalarFromBigInt(q));

describe('ec-elgamal: scheme contract', () => {
  test('keys: D = d·G, publicKeyOf, deterministic under a seeded rng', () => {
    assert.deepEqual(pk, mulBase(sk));
    assert.deepEqual(S.publicKeyOf(sk), pk);
    const again = S.generateKeyPair({ rng: seededRng(new Uint8Array(32).fill(1)), bits: 4096 });
    assert.deepEqual(again.secretKey, sk);
    assert.notDeepEqual(S.generateKeyPair().secretKey, sk);
  });

  test('decrypt(encrypt(m)) = m, also for the identity plaintext', () => {
    fc.assert(
      fc.property(arbPt, (m) => {
        assert.ok(S.equalPlaintext(S.decrypt(sk, S.encrypt(pk, m)), m));
      }),
      RUNS,
    );
    const id = S.identity(pk);
    assert.ok(isIdentity(S.decrypt(sk, S.encrypt(pk, id))));
  });

  test('combine / uncombine / combinePlain are homomorphic for point addition', () => {
    fc.assert(
      fc.property(arbPt, arbPt, (a, b) => {
        const ca = S.encrypt(pk, a);
        const cb = S.encrypt(pk, b);
        assert.deepEqual(S.decrypt(sk, S.combine(pk, ca, cb)), S.op(pk, a, b));
        assert.deepEqual(S.decrypt(sk, S.uncombine(pk, ca, cb)), S.op(pk, a, S.inv(pk, b)));
        assert.deepEqual(S.decrypt(sk, S.combinePlain(pk, ca, b)), S.op(pk, a, b));
        assert.ok(isIdentity(S.op(pk, a, S.inv(pk, a))));
        assert.deepEqual(S.op(pk, a, S.identity(pk)), a);
      }),
      RUNS,
    );
  });

  test('rerandomize changes both components and keeps the plaintext', () => {
    fc.assert(
      fc.property(arbPt, (m) => {
        const c = S.encrypt(pk, m);
        const r = S.rerandomize(pk, c);
        assert.ok(!equalBytes(r.c1, c.c1) && !equalBytes(r.c2, c.c2));
        assert.deepEqual(S.decrypt(sk, r), m);
      }),
      RUNS,
    );
  });

  test('blind → decrypt → applyShare → unblind = applyShare(decrypt)', () => {
    fc.assert(
      fc.property(arbPt, arbShare, (m, q) => {
        const c = S.encrypt(pk, m);
        const { ciphertext, blind } = S.blind(pk, c);
        // The key holder sees ρ·M, not M.
        const seen = S.decrypt(sk, ciphertext);
        assert.ok(!S.equalPlaintext(seen, m));
        const y = S.applyShare(pk, seen, q);
        assert.deepEqual(S.unblind(pk, blind, y), S.applyShare(pk, m, q));
        assert.deepEqual(S.applyShare(pk, m, q), noble(m).multiply(scalarToBigInt(q)).toBytes());
        S.wipeBlind(blind);
        assert.ok(blind.every((x) => x === 0));
      }),
      RUNS,
    );
  });

  test('sampleUnknown: a valid ciphertext of a fresh unknown plaintext', () => {
    const a = S.sampleUnknown(pk);
    const b = S.sampleUnknown(pk);
    const enc = S.encodeCiphertext(pk, a);
    assert.deepEqual(S.decodeCiphertext(pk, enc), a);
    assert.ok(!S.equalPlaintext(S.decrypt(sk, a), S.decrypt(sk, b)));
    // Deterministic in its rng: two element derivations of rng(64).
    const r1 = seededRng(new Uint8Array(32).fill(9));
    const r2 = seededRng(new Uint8Array(32).fill(9));
    const s = S.sampleUnknown(pk, r1);
    assert.deepEqual(s.c1, pointFromUniform(r2(64)));
    assert.deepEqual(s.c2, pointFromUniform(r2(64)));
  });

  test('plaintextFromSeed / shareFromSeed follow the spec derivation', () => {
    fc.assert(
      fc.property(arbSeed, (seed) => {
        const empty = new Uint8Array(0);
        const m = S.plaintextFromSeed(pk, seed);
        const w = deriveKey(seed, 'scheme/ec-elgamal/plaintext', empty, 64);
        assert.deepEqual(m, pointFromUniform(w));
        const q = S.shareFromSeed(pk, seed);
        const wq = deriveKey(seed, 'scheme/ec-elgamal/share', empty, 64);
        assert.deepEqual(q, scalarFromWide(wq));
        // Independent of the key pair.
        const other = S.generateKeyPair().publicKey;
        assert.deepEqual(S.plaintextFromSeed(other, seed), m);
        assert.deepEqual(S.shareFromSeed(other, seed), q);
      }),
      RUNS,
    );
    throwsCode(() => S.plaintextFromSeed(pk, new Uint8Array(31)), 'ERR_INVALID_ARGUMENT');
    throwsCode(() => S.shareFromSeed(pk, new Uint8Array(64)), 'ERR_INVALID_ARGUMENT');
  });
});

describe('ec-elgamal: encodings', () => {
  test('round trips and sizes: pk 32, sk 32, ciphertext 64, plaintext 32, share 32', () => {
    fc.assert(
      fc.property(arbPt, arbShare, (m, q) => {
        const epk = S.encodePublicKey(pk);
        assert.equal(epk.length, 32);
        assert.deepEqual(S.decodePublicKey(epk), pk);
        const esk = S.encodeSecretKey(sk);
        assert.equal(esk.length, 32);
        assert.deepEqual(S.decodeSecretKey(esk), sk);
        const c = S.encrypt(pk, m);
        const ec = S.encodeCiphertext(pk, c);
        assert.equal(ec.length, 64);
        assert.deepEqual(ec, concat(c.c1, c.c2));
        assert.deepEqual(S.decodeCiphertext(pk, ec), c);
        const em = S.encodePlaintext(pk, m);
        assert.equal(em.length, 32);
        assert.deepEqual(S.decodePlaintext(pk, em), m);
        assert.deepEqual(S.secretBytes(pk, m), em);
        const eq = S.encodeShare(pk, q);
        assert.equal(eq.length, 32);
        assert.deepEqual(S.decodeShare(pk, eq), q);
      }),
      RUNS,
    );
  });

  test('fingerprint = SHA-256("blindfold/v1/fingerprint/ec-elgamal" ‖ 0x00 ‖ pk)', () => {
    const expected = nobleSha256(
      concat(utf8('blindfold/v1/fingerprint/ec-elgamal'), u8(0), S.encodePublicKey(pk)),
    );
    assert.deepEqual(S.fingerprint(pk), expected);
  });

  test('decoders reject the identity with ERR_IDENTITY and encoders refuse to write it', () => {
    const zero = new Uint8Array(32);
    const c = S.encodeCiphertext(pk, S.encrypt(pk, S.randomPlaintext(pk)));
    throwsCode(() => S.decodePublicKey(zero), 'ERR_IDENTITY');
    throwsCode(() => S.decodePlaintext(pk, zero), 'ERR_IDENTITY');
    throwsCode(() => S.decodeCiphertext(pk, concat(zero, c.subarray(32))), 'ERR_IDENTITY');
    throwsCode(() => S.decodeCiphertext(pk, concat(c.subarray(0, 32), zero)), 'ERR_IDENTITY');
    throwsCode(() => S.decodeSecretKey(zero), 'ERR_IDENTITY');
    throwsCode(() => S.decodeShare(pk, zero), 'ERR_IDENTITY');
    const id = S.identity(pk);
    throwsCode(() => S.encodePlaintext(pk, id), 'ERR_IDENTITY');
    throwsCode(() => S.secretBytes(pk, id), 'ERR_IDENTITY');
    const m = S.randomPlaintext(pk);
    const zeroC2: EcCiphertext = { c1: BASE, c2: sub(m, m) };
    throwsCode(() => S.encodeCiphertext(pk, zeroC2), 'ERR_IDENTITY');
    throwsCode(() => S.encodePublicKey(IDENTITY), 'ERR_IDENTITY');
  });

  test('decoders reject malformed bytes with ERR_DECODE', () => {
    const c = S.encodeCiphertext(pk, S.encrypt(pk, S.randomPlaintext(pk)));
    const nonCanonical = new Uint8Array(32).fill(0xff); // top bit set, ≥ p
    const negative = Uint8Array.of(1, ...new Uint8Array(31)); // s = 1 is negative
    for (const bad of [nonCanonical, negative, new Uint8Array(31), new Uint8Array(33)]) {
      throwsCode(() => S.decodePublicKey(bad), 'ERR_DECODE');
      throwsCode(() => S.decodePlaintext(pk, bad), 'ERR_DECODE');
    }
    throwsCode(() => S.decodeCiphertext(pk, c.subarray(0, 63)), 'ERR_DECODE');
    throwsCode(() => S.decodeCiphertext(pk, concat(c, u8(0))), 'ERR_DECODE');
    throwsCode(() => S.decodeCiphertext(pk, concat(c.subarray(0, 32), negative)), 'ERR_DECODE');
    throwsCode(() => S.decodeCiphertext(pk, concat(nonCanonical, c.subarray(32))), 'ERR_DECODE');
    const l = scalarFromBigInt(L - 1n);
    l[0]! += 1; // ℓ
    throwsCode(() => S.decodeSecretKey(l), 'ERR_DECODE');
    throwsCode(() => S.decodeShare(pk, l), 'ERR_DECODE');
    throwsCode(() => S.decodeShare(pk, new Uint8Array(33)), 'ERR_DECODE');
  });
});

describe("ec-elgamal: the manager's answers from encodings (issue #9: each point decoded once)", () => {
  // answerFromEncoded and shareOfEncoded skip the separate validation of points that libsodium's
  // operations decode anyway. They must give exactly what the separate steps give: the same
  // answer, or the same error (code and message), for every input, valid or not.
  const { publicKey: pk, secretKey: sk } = S.generateKeyPair();
  const outcome = (f: () => Uint8Array): string => {
    try {
      return `ok ${toHex(f())}`;
    } catch (e) {
      return isBlindfoldError(e) ? `${e.code} ${e.message}` : `not a BlindfoldError: ${String(e)}`;
    }
  };
  const zero = new Uint8Array(32);
  const nonCanonical = new Uint8Array(32).fill(0xff);
  const negative = Uint8Array.of(1, ...new Uint8Array(31));
  const point = fc.oneof(
    fc.constant('valid'),
    fc.constantFrom('identity', 'non-canonical', 'negative', 'random', 'short', 'long'),
  );
  const bytesOf = (kind: string, valid: Uint8Array, rnd: Uint8Array): Uint8Array =>
    kind === 'valid'
      ? valid
      : kind === 'identity'
        ? zero
        : kind === 'non-canonical'
          ? nonCanonical
          : kind === 'negative'
            ? negative
            : kind === 'random'
              ? rnd
              : kind === 'short'
                ? valid.subarray(0, 31)
                : concat(valid, u8(7));

  test('answerFromEncoded = applyShare(decrypt(decodeCiphertext(·))), value or error', () => {
    fc.assert(
      fc.property(
        point,
        point,
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.boolean(),
        (k1, k2, rnd, decryptsToIdentity) => {
          const c = S.encrypt(pk, S.randomPlaintext(pk));
          // c2 = d·c1: a valid ciphertext of the identity, which applyShare refuses.
          const c2 = decryptsToIdentity ? mul(sk, c.c1) : c.c2;
          const blinded = concat(bytesOf(k1, c.c1, rnd), bytesOf(k2, c2, rnd));
          const q = S.randomShare(pk);
          const fast = outcome(() => answerFromEncoded(pk, sk, blinded, q));
          const slow = outcome(() =>
            S.applyShare(pk, S.decrypt(sk, S.decodeCiphertext(pk, blinded)), q),
          );
          assert.equal(fast, slow, `${k1} ${k2} ${decryptsToIdentity}`);
        },
      ),
      { numRuns: 300 },
    );
    // Whole-ciphertext lengths other than 64.
    const c = S.encodeCiphertext(pk, S.encrypt(pk, S.randomPlaintext(pk)));
    for (const b of [c.subarray(0, 63), concat(c, u8(0)), new Uint8Array(0)]) {
      const q = S.randomShare(pk);
      assert.equal(
        outcome(() => answerFromEncoded(pk, sk, b, q)),
        outcome(() => S.applyShare(pk, S.decrypt(sk, S.decodeCiphertext(pk, b)), q)),
      );
    }
  });

  test('shareOfEncoded = applyShare(decodePlaintext(·)), value or error', () => {
    fc.assert(
      fc.property(point, fc.uint8Array({ minLength: 32, maxLength: 32 }), (k, rnd) => {
        const x = bytesOf(k, S.randomPlaintext(pk), rnd);
        const q = S.randomShare(pk);
        assert.equal(
          outcome(() => shareOfEncoded(pk, x, q)),
          outcome(() => S.applyShare(pk, S.decodePlaintext(pk, x), q)),
          k,
        );
      }),
      { numRuns: 200 },
    );
  });

  test("the appliance's unblinding of an encoded answer = finish(decodePlaintext(·)), value or error", () => {
    fc.assert(
      fc.property(point, fc.uint8Array({ minLength: 32, maxLength: 32 }), (k, rnd) => {
        const y = bytesOf(k, S.randomPlaintext(pk), rnd);
        // A pooled ρ carries its inverse, which the first unblinding takes: the copy has none,
        // so the reference run computes it; the values must agree all the same.
        const { blind } = S.blind(pk, S.encrypt(pk, S.randomPlaintext(pk)));
        const copy = blind.slice() as typeof blind;
        const unblinder = S.unblinder!(pk, copy);
        assert.equal(
          outcome(() => withEncodedPlaintext(pk, y, (p) => homMode.finish(S, pk, blind, p))),
          outcome(() => homMode.finish(S, pk, copy, S.decodePlaintext(pk, y))),
          k,
        );
        assert.equal(
          outcome(() =>
            withEncodedPlaintext(pk, y, (p) => homMode.finishWith(S, pk, unblinder, p)),
          ),
          outcome(() => homMode.finish(S, pk, copy, S.decodePlaintext(pk, y))),
          k,
        );
      }),
      { numRuns: 200 },
    );
  });
});
