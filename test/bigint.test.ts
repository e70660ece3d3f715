/**
 * src/core/bigint.ts against references: brute force on small numbers, a plain
 * square-and-multiply on large ones, and OpenSSL (node:crypto generatePrime / checkPrime).
 */
import assert from 'node:assert/strict';
import { checkPrimeSync, generatePrimeSync } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  bitLength,
  byteLength,
  gcd,
  generatePrime,
  isPerfectSquare,
  isProbablePrime,
  isqrt,
  jacobi,
  lcm,
  mod,
  modInv,
  modPow,
  randomBelow,
  randomUnit,
  SMALL_PRIMES,
  smallFactor,
} from '../src/core/bigint.ts';
import { isBlindfoldError } from '../src/core/errors.ts';
import { seededRng } from '../src/core/random.ts';

const prime = (bits: number) => generatePrimeSync(bits, { bigint: true });

/** Reference: right-to-left square-and-multiply, nothing clever. */
function refPow(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n % m;
  let x = mod(b, m);
  let k = e;
  while (k > 0n) {
    if (k & 1n) r = (r * x) % m;
    x = (x * x) % m;
    k >>= 1n;
  }
  return r;
}

/** Reference Legendre symbol by listing the squares modulo a small prime. */
function legendre(a: number, p: number): number {
  const r = ((a % p) + p) % p;
  if (r === 0) return 0;
  for (let x = 1; x < p; x++) if ((x * x) % p === r) return 1;
  return -1;
}

function factor(n: number): number[] {
  const out: number[] = [];
  let m = n;
  for (let p = 2; p * p <= m; p++) {
    while (m % p === 0) {
      out.push(p);
      m /= p;
    }
  }
  if (m > 1) out.push(m);
  return out;
}

const big = (bits: number) => fc.bigInt({ min: 0n, max: (1n << BigInt(bits)) - 1n });

describe('modPow', () => {
  test('brute force on small numbers, including edge cases', () => {
    for (let m = 1n; m < 40n; m++) {
      for (let b = -5n; b < 45n; b++) {
        let r = 1n % m;
        for (let e = 0n; e < 70n; e++) {
          assert.equal(modPow(b, e, m), mod(r, m), `${b}^${e} mod ${m}`);
          r = (r * b) % m;
        }
      }
    }
  });

  test('equals square-and-multiply at 1024, 2048 and 4096 bits (all window sizes)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(16, 100, 300, 1024, 2048, 4096),
        fc.constantFrom(1024, 2048, 4096),
        big(4096),
        big(4096),
        big(4096),
        (eBits, mBits, b, e0, m0) => {
          const m = (m0 >> BigInt(4096 - mBits)) | 1n | (1n << BigInt(mBits - 1));
          const e = e0 >> BigInt(4096 - eBits);
          assert.equal(modPow(b, e, m), refPow(b, e, m));
        },
      ),
      { numRuns: 12 },
    );
  });

  test('Fermat and RSA identities on OpenSSL primes', () => {
    const p = prime(1024);
    const q = prime(1024);
    for (const a of [2n, 3n, p - 2n, 0xdeadbeefn]) assert.equal(modPow(a, p - 1n, p), 1n);
    const n = p * q;
    const d = modInv(65537n, lcm(p - 1n, q - 1n));
    const m = randomBelow(n);
    assert.equal(modPow(modPow(m, 65537n, n), d, n), m);
  });

  test('rejects a negative exponent and a non-positive modulus', () => {
    assert.throws(() => modPow(2n, -1n, 7n), RangeError);
    assert.throws(() => modPow(2n, 1n, 0n), RangeError);
    assert.equal(modPow(5n, 0n, 1n), 0n);
  });
});

describe('modInv, gcd, lcm', () => {
  test('brute force on small numbers', () => {
    for (let m = 1; m < 60; m++) {
      for (let a = -60; a < 60; a++) {
        const g = Number(gcd(BigInt(a), BigInt(m)));
        let ref = 0;
        for (let d = 1; d <= Math.max(Math.abs(a), m); d++) if (a % d === 0 && m % d === 0) ref = d;
        assert.equal(g, ref, `gcd(${a}, ${m})`);
        if (g === 1) {
          const inv = modInv(BigInt(a), BigInt(m));
          assert.ok(inv >= 0n && inv < BigInt(m));
          assert.equal(mod(BigInt(a) * inv, BigInt(m)), 1n % BigInt(m));
        } else {
          assert.throws(
            () => modInv(BigInt(a), BigInt(m)),
            (e: unknown) => isBlindfoldError(e, 'ERR_INVALID_ARGUMENT'),
          );
        }
        if (a !== 0) assert.equal(lcm(BigInt(a), BigInt(m)), BigInt((Math.abs(a) * m) / ref));
      }
    }
  });

  test('large values: a · a⁻¹ = 1 mod m', () => {
    fc.assert(
      fc.property(big(4096), big(2048), (a, m0) => {
        const m = m0 | 1n;
        if (gcd(a, m) !== 1n) return;
        assert.equal((a * modInv(a, m)) % m, 1n % m);
      }),
      { numRuns: 30 },
    );
  });
});

describe('jacobi', () => {
  test('equals the product of Legendre symbols over the factorisation (odd n < 300)', () => {
    for (let n = 1; n < 300; n += 2) {
      const fs = factor(n);
      for (let a = -10; a < 2 * n + 5; a++) {
        const ref = fs.reduce((acc, p) => acc * legendre(a, p), 1) + 0; // no −0
        assert.equal(jacobi(BigInt(a), BigInt(n)), ref, `(${a}/${n})`);
      }
    }
  });

  test("Euler's criterion on a 1024-bit prime, multiplicativity on a 2048-bit modulus", () => {
    const p = prime(1024);
    const q = prime(1024);
    const n = p * q;
    fc.assert(
      fc.property(big(2048), big(2048), (a0, b0) => {
        const a = a0 % n;
        const b = b0 % n;
        const e = modPow(a, (p - 1n) / 2n, p);
        assert.equal(jacobi(a, p), e === p - 1n ? -1 : Number(e));
        assert.equal(jacobi(a * b, n), jacobi(a, n) * jacobi(b, n));
        assert.equal(jacobi(a, n), jacobi(a, p) * jacobi(a, q));
      }),
      { numRuns: 30 },
    );
  });

  test('rejects an even or non-positive n', () => {
    assert.throws(() => jacobi(3n, 8n), RangeError);
    assert.throws(() => jacobi(3n, -7n), RangeError);
  });
});

describe('primes', () => {
  test('SMALL_PRIMES are the 6542 primes below 2^16', () => {
    assert.equal(SMALL_PRIMES.length, 6542);
    assert.equal(SMALL_PRIMES.at(-1), 65521);
    for (const p of [2, 3, 5, 65519, 65521]) assert.ok(SMALL_PRIMES.includes(p));
  });

  test('isProbablePrime agrees with trial division below 67000 (both sides of 2^16)', () => {
    const isPrime = (n: number) => n > 1 && factor(n).length === 1;
    for (let n = 0; n < 67000; n++) assert.equal(isProbablePrime(BigInt(n)), isPrime(n), `${n}`);
  });

  test('rejects pseudoprimes and Carmichael numbers, accepts OpenSSL primes', () => {
    // 3215031751: strong pseudoprime to bases 2, 3, 5, 7; 3825123056546413051: to all bases ≤ 23.
    for (const n of [561n, 41041n, 825265n, 3215031751n, 3825123056546413051n]) {
      assert.equal(isProbablePrime(n), false, `${n}`);
    }
    // A large Carmichael number (6k+1)(12k+1)(18k+1) with all three factors prime.
    let k = 1n << 40n;
    while (
      !(checkPrimeSync(6n * k + 1n) && checkPrimeSync(12n * k + 1n) && checkPrimeSync(18n * k + 1n))
    )
      k++;
    assert.equal(isProbablePrime((6n * k + 1n) * (12n * k + 1n) * (18n * k + 1n)), false);
    for (const bits of [64, 256, 1024]) {
      const p = prime(bits);
      assert.equal(isProbablePrime(p), true);
      assert.equal(isProbablePrime(p * prime(bits)), false);
    }
  });

  test('generatePrime: exact size, two top bits, prime for OpenSSL, reproducible', () => {
    for (const bits of [64, 257, 512]) {
      const p = generatePrime(bits);
      assert.equal(bitLength(p), bits);
      assert.equal(p >> BigInt(bits - 2), 3n);
      assert.ok(checkPrimeSync(p));
    }
    const seed = new Uint8Array(32).fill(9);
    const a = generatePrime(512, seededRng(seed));
    assert.equal(generatePrime(512, seededRng(seed)), a);
    assert.notEqual(generatePrime(512, seededRng(new Uint8Array(32))), a);
    assert.throws(() => generatePrime(16), RangeError);
  });

  test('smallFactor finds factors below 2^16 and nothing else', () => {
    const big = prime(512);
    for (const f of [2, 3, 65521]) assert.equal(smallFactor(big * BigInt(f)), f);
    assert.equal(smallFactor(big * 65537n), 0);
    assert.equal(smallFactor(big * prime(512)), 0);
    assert.equal(smallFactor(big * 7n * 5n), 5);
    assert.equal(smallFactor(65521n), 0);
    assert.equal(smallFactor(big * 101n, 101), 0);
  });
});

describe('sizes, roots, randomness', () => {
  test('bitLength and byteLength', () => {
    assert.equal(bitLength(0n), 0);
    fc.assert(
      fc.property(big(3000), (x) => {
        assert.equal(bitLength(x), x === 0n ? 0 : x.toString(2).length);
        assert.equal(byteLength(x), Math.ceil(bitLength(x) / 8));
      }),
    );
  });

  test('isqrt and isPerfectSquare', () => {
    fc.assert(
      fc.property(big(2100), (x) => {
        const r = isqrt(x);
        assert.ok(r * r <= x && (r + 1n) * (r + 1n) > x);
        assert.equal(isPerfectSquare(x * x), true);
        if (x > 0n) assert.equal(isPerfectSquare(x * x + 1n), false);
      }),
    );
  });

  test('randomBelow: range and a chi-square check on a seeded stream', () => {
    const rng = seededRng(new Uint8Array(32).fill(1));
    const n = 6n;
    const counts = new Array(6).fill(0);
    const draws = 6000;
    for (let i = 0; i < draws; i++) counts[Number(randomBelow(n, rng))]++;
    const chi2 = counts.reduce((s, c) => s + (c - draws / 6) ** 2 / (draws / 6), 0);
    assert.ok(chi2 < 20.5, `chi2 = ${chi2}`); // p ≈ 0.001 for 5 degrees of freedom
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: 1n << 300n }), (m) => {
        const x = randomBelow(m);
        assert.ok(x >= 0n && x < m);
      }),
    );
    assert.equal(randomBelow(1n), 0n);
    const u = randomUnit(15n);
    assert.equal(gcd(u, 15n), 1n);
  });
});
