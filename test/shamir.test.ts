/**
 * Shamir secret sharing over GF(2^8) (src/core/shamir.ts), checked against an independent
 * log/exp-table implementation of the field and of Lagrange interpolation written here.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { seededRng } from '../src/core/random.ts';
import {
  combine,
  decodeShareText,
  encodeShareText,
  gfInv,
  gfMul,
  split,
} from '../src/core/shamir.ts';

// Reference field: exp/log tables over the generator 0x03 of GF(2^8) mod 0x11b.
const EXP = new Uint8Array(512);
const LOG = new Uint8Array(256);
{
  let v = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = v;
    LOG[v] = i;
    v ^= (v << 1) ^ (v & 0x80 ? 0x11b : 0); // v·3 = v·2 ⊕ v
    v &= 0xff;
  }
  for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255]!;
}
const refMul = (a: number, b: number) => (a === 0 || b === 0 ? 0 : EXP[LOG[a]! + LOG[b]!]!);
const refDiv = (a: number, b: number) => (a === 0 ? 0 : EXP[LOG[a]! + 255 - LOG[b]!]!);

/** Reference Lagrange: the value at `at` of the polynomial through points (x, y). */
function refInterpolate(points: [number, number][], at: number): number {
  let acc = 0;
  for (const [xi, yi] of points) {
    let l = 1;
    for (const [xj] of points) if (xj !== xi) l = refMul(l, refDiv(at ^ xj, xi ^ xj));
    acc ^= refMul(l, yi);
  }
  return acc;
}

const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;

describe('GF(2^8) arithmetic', () => {
  test('FIPS-197 §4.2 examples', () => {
    assert.equal(gfMul(0x57, 0x83), 0xc1);
    assert.equal(gfMul(0x57, 0x13), 0xfe);
  });

  test('multiplication matches the log/exp reference for all 65536 pairs', () => {
    for (let a = 0; a < 256; a++)
      for (let b = 0; b < 256; b++) assert.equal(gfMul(a, b), refMul(a, b));
  });

  test('every non-zero element has its inverse', () => {
    assert.equal(gfInv(0), 0);
    for (let a = 1; a < 256; a++) assert.equal(gfMul(a, gfInv(a)), 1);
  });
});

/** A random secret with t ≤ n and an ordered choice of k ≥ t distinct share indices. */
const splitCase = fc
  .record({
    secret: fc.uint8Array({ minLength: 1, maxLength: 48 }),
    n: fc.integer({ min: 2, max: 12 }),
    seed: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  })
  .chain(({ secret, n, seed }) =>
    fc.record({
      secret: fc.constant(secret),
      seed: fc.constant(seed),
      n: fc.constant(n),
      t: fc.integer({ min: 2, max: n }),
      order: fc.shuffledSubarray([...Array(n).keys()], { minLength: n, maxLength: n }),
    }),
  );

describe('split / combine', () => {
  test('any t of n shares, in any order, reconstruct the secret; so do more than t', () => {
    fc.assert(
      fc.property(splitCase, ({ secret, seed, n, t, order }) => {
        const shares = split(secret, t, n, seededRng(seed));
        assert.equal(shares.length, n);
        shares.forEach((s, i) => {
          assert.deepEqual([...s.subarray(0, 3)], [1, t, i + 1]);
          assert.equal(s.length, 3 + secret.length);
        });
        assert.deepEqual(combine(order.slice(0, t).map((i) => shares[i]!)), secret);
        assert.deepEqual(combine(order.map((i) => shares[i]!)), secret);
        assert.deepEqual(
          combine(order.slice(0, t).map((i) => encodeShareText(shares[i]!))),
          secret,
        );
      }),
      { numRuns: 200 },
    );
  });

  test('shares lie on a polynomial of degree t−1 (reference interpolation agrees)', () => {
    fc.assert(
      fc.property(splitCase, ({ secret, seed, n, t }) => {
        const shares = split(secret, t, n, seededRng(seed));
        for (let k = 0; k < secret.length; k++) {
          const pts = shares.slice(0, t).map((s): [number, number] => [s[2]!, s[3 + k]!]);
          assert.equal(refInterpolate(pts, 0), secret[k]);
          for (const s of shares.slice(t)) assert.equal(refInterpolate(pts, s[2]!), s[3 + k]);
        }
      }),
      { numRuns: 100 },
    );
  });

  test('t−1 shares are consistent with EVERY candidate secret, each through exactly one completion', () => {
    // Perfect secrecy: fix t−1 shares. For any guessed secret g there is a polynomial of degree t−1
    // through (0, g) and those shares; its value at a further x is a share that, combined with the
    // t−1 real ones, yields g. The map g ↦ that share value is a bijection of GF(2^8), so with
    // uniformly random coefficients every g is equally likely given the t−1 shares.
    fc.assert(
      fc.property(splitCase, ({ secret, seed, n, t, order }) => {
        const shares = split(secret, t, n, seededRng(seed));
        const known = order.slice(0, t - 1).map((i) => shares[i]!);
        const xs = new Set(known.map((s) => s[2]!));
        let freeX = 1;
        while (xs.has(freeX)) freeX++;
        const k = 0; // one byte position suffices: positions are independent polynomials
        const completions = new Set<number>();
        for (let g = 0; g < 256; g++) {
          const pts: [number, number][] = [
            [0, g],
            ...known.map((s): [number, number] => [s[2]!, s[3 + k]!]),
          ];
          const forgedY = refInterpolate(pts, freeX);
          completions.add(forgedY);
          const forged = Uint8Array.of(1, t, freeX, forgedY);
          const knownByte = known.map((s) => Uint8Array.of(1, t, s[2]!, s[3 + k]!));
          assert.deepEqual(combine([...knownByte, forged]), Uint8Array.of(g));
        }
        assert.equal(completions.size, 256);
      }),
      { numRuns: 25 },
    );
  });

  test('with t = 2 a single share is uniform over the coefficient', () => {
    for (const s of [0x00, 0x5a, 0xff]) {
      for (const x of [1, 2, 200]) {
        const values = new Set<number>();
        for (let c = 0; c < 256; c++) {
          const shares = split(Uint8Array.of(s), 2, Math.max(2, x), () => Uint8Array.of(c));
          values.add(shares[x - 1]![3]!);
        }
        assert.equal(values.size, 256);
      }
    }
  });

  test('deterministic for a seeded rng, fresh with the system rng', () => {
    const secret = new Uint8Array(32).fill(7);
    const seed = new Uint8Array(32).fill(1);
    assert.deepEqual(split(secret, 3, 5, seededRng(seed)), split(secret, 3, 5, seededRng(seed)));
    assert.notDeepEqual(split(secret, 3, 5), split(secret, 3, 5));
  });

  test('255 shares, threshold 255', () => {
    const secret = Uint8Array.of(1, 2, 3);
    const shares = split(secret, 255, 255);
    assert.equal(shares[254]![2], 255);
    assert.deepEqual(combine(shares.reverse()), secret);
  });
});

describe('malformed input', () => {
  const secret = Uint8Array.of(9, 8, 7, 6);
  const shares = split(secret, 3, 5);
  const mut = (s: Uint8Array, i: number, v: number) => {
    const c = Uint8Array.from(s);
    c[i] = v;
    return c;
  };

  test('split arguments', () => {
    assert.throws(() => split(new Uint8Array(0), 2, 3), code('ERR_INVALID_ARGUMENT'));
    assert.throws(() => split(secret, 1, 3), code('ERR_INVALID_ARGUMENT'));
    assert.throws(() => split(secret, 4, 3), code('ERR_INVALID_ARGUMENT'));
    assert.throws(() => split(secret, 2, 256), code('ERR_INVALID_ARGUMENT'));
    assert.throws(() => split(secret, 2.5, 3), code('ERR_INVALID_ARGUMENT'));
  });

  test('structure: length, version, threshold, x', () => {
    assert.throws(() => combine([]), code('ERR_INVALID_ARGUMENT'));
    assert.throws(
      () => combine([Uint8Array.of(1, 3, 1), shares[1]!, shares[2]!]),
      code('ERR_DECODE'),
    );
    assert.throws(
      () => combine([mut(shares[0]!, 0, 2), shares[1]!, shares[2]!]),
      code('ERR_UNSUPPORTED_VERSION'),
    );
    assert.throws(
      () => combine([mut(shares[0]!, 1, 1), shares[1]!, shares[2]!]),
      code('ERR_DECODE'),
    );
    assert.throws(
      () => combine([mut(shares[0]!, 2, 0), shares[1]!, shares[2]!]),
      code('ERR_DECODE'),
    );
  });

  test('shares that do not belong together', () => {
    assert.throws(() => combine([shares[0]!, shares[1]!]), code('ERR_INVALID_ARGUMENT')); // too few
    assert.throws(
      () => combine([shares[0]!, shares[0]!, shares[1]!]),
      code('ERR_INVALID_ARGUMENT'),
    ); // duplicate x
    assert.throws(
      () => combine([mut(shares[0]!, 1, 4), shares[1]!, shares[2]!]),
      code('ERR_INVALID_ARGUMENT'),
    );
    assert.throws(
      () => combine([shares[0]!.subarray(0, 6), shares[1]!, shares[2]!]),
      code('ERR_INVALID_ARGUMENT'),
    );
    const other = split(secret, 3, 5);
    assert.throws(() => combine([...shares.slice(0, 3), other[3]!]), code('ERR_INVALID_ARGUMENT')); // off the polynomial
    assert.throws(
      () => combine([...shares.slice(0, 3), mut(shares[4]!, 5, shares[4]![5]! ^ 1)]),
      code('ERR_INVALID_ARGUMENT'),
    );
  });

  test('text form', () => {
    const t = encodeShareText(shares[0]!);
    assert.match(t, /^bf-share-[A-Za-z0-9_-]+$/);
    assert.deepEqual(decodeShareText(`  ${t}\n`), shares[0]);
    assert.throws(() => decodeShareText(t.slice(1)), code('ERR_DECODE'));
    assert.throws(() => decodeShareText(`${t}=`), code('ERR_DECODE'));
    assert.throws(() => combine([`${t}!`, shares[1]!, shares[2]!]), code('ERR_DECODE'));
  });

  test('arbitrary bytes never crash combine: they reconstruct or throw a BlindfoldError', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 8 }), { maxLength: 5 }), (arr) => {
        try {
          combine(arr);
        } catch (e) {
          assert.ok(
            ['ERR_DECODE', 'ERR_UNSUPPORTED_VERSION', 'ERR_INVALID_ARGUMENT'].includes(
              (e as { code: string }).code,
            ),
          );
        }
      }),
    );
  });
});
