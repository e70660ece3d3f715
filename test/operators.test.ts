/**
 * The split-mode operators of src/core/operators.ts (SPEC.md §5.1): group laws, inverses, seed
 * expansion, range checks, and the primality of p = 2^256 − 189.
 */
import assert from 'node:assert/strict';
import { checkPrimeSync } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isProbablePrime, modPow } from '../src/core/bigint.ts';
import { bigToBytes, bytesToBig, equalBytes } from '../src/core/bytes.ts';
import { type ErrorCode, isBlindfoldError } from '../src/core/errors.ts';
import {
  getSplitOperator,
  SPLIT_P,
  type SplitOperator,
  splitOperators,
} from '../src/core/operators.ts';

const P = SPLIT_P;
const enc = (x: bigint) => bigToBytes(x, 32);

function throwsCode(f: () => unknown, code: ErrorCode, msg?: string): void {
  assert.throws(f, (e: unknown) => isBlindfoldError(e, code), msg);
}

const seed32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
/** Any valid element, including the edges of the range, built from raw bytes. */
function elementArb(op: SplitOperator) {
  if (op.id === 'xor') return seed32;
  const lo = op.id === 'mul-p' ? 1n : 0n;
  return fc
    .oneof(fc.bigInt({ min: lo, max: P - 1n }), fc.constantFrom(lo, lo + 1n, P - 2n, P - 1n))
    .map(enc);
}

const neutral: Record<string, Uint8Array> = {
  xor: enc(0n),
  'add-p': enc(0n),
  'mul-p': enc(1n),
};

describe('p = 2^256 − 189', () => {
  test('is prime (our Miller–Rabin and OpenSSL) and the largest prime below 2^256', () => {
    assert.equal(P, 2n ** 256n - 189n);
    assert.ok(isProbablePrime(P));
    assert.ok(checkPrimeSync(P));
    for (let k = 1n; k < 189n; k += 2n)
      assert.equal(isProbablePrime(2n ** 256n - k), false, `${k}`);
  });
});

for (const op of Object.values(splitOperators)) {
  describe(`split operator ${op.id}`, () => {
    const el = elementArb(op);

    test('group laws: associative, commutative, neutral, inverse', () => {
      fc.assert(
        fc.property(el, el, el, (a, b, c) => {
          assert.ok(equalBytes(op.op(op.op(a, b), c), op.op(a, op.op(b, c))));
          assert.ok(equalBytes(op.op(a, b), op.op(b, a)));
          assert.ok(equalBytes(op.op(a, neutral[op.id]!), a));
          assert.ok(equalBytes(op.op(a, op.inv(a)), neutral[op.id]!));
          // The split-mode identity (SPEC.md §5.1): (x ⊕ a) ⊖ a = x.
          assert.ok(equalBytes(op.op(op.op(b, a), op.inv(a)), b));
          op.check(op.op(a, b));
          op.check(op.inv(a));
        }),
        { numRuns: 200 },
      );
    });

    test('the protocol shape: (M ⊕ r) ⊕ (Q ⊖ r) = M ⊕ Q', () => {
      fc.assert(
        fc.property(el, el, el, (m, r, q) => {
          const left = op.op(op.op(m, r), op.op(q, op.inv(r)));
          assert.ok(equalBytes(left, op.op(m, q)));
        }),
      );
    });

    test('random and fromSeed: valid, never neutral, fromSeed deterministic', () => {
      for (let i = 0; i < 200; i++) {
        const r = op.random();
        assert.equal(r.length, 32);
        op.check(r);
        assert.ok(!equalBytes(r, neutral[op.id]!));
      }
      fc.assert(
        fc.property(seed32, (s) => {
          const x = op.fromSeed(s);
          op.check(x);
          assert.ok(!equalBytes(x, neutral[op.id]!));
          assert.ok(equalBytes(x, op.fromSeed(s.slice())));
          const t = s.slice();
          t[5]! ^= 0x10;
          assert.ok(!equalBytes(x, op.fromSeed(t)));
        }),
      );
      throwsCode(() => op.fromSeed(new Uint8Array(31)), 'ERR_INVALID_ARGUMENT');
    });

    test('check rejects wrong lengths and out-of-range elements with ERR_DECODE', () => {
      for (const len of [0, 31, 33, 64]) {
        throwsCode(() => op.check(new Uint8Array(len)), 'ERR_DECODE', `length ${len}`);
        throwsCode(() => op.op(new Uint8Array(len), op.random()), 'ERR_DECODE');
      }
      const bad =
        op.id === 'xor' ? [] : op.id === 'add-p' ? [P, 2n ** 256n - 1n] : [0n, P, 2n ** 256n - 1n];
      for (const x of bad) {
        throwsCode(() => op.check(enc(x)), 'ERR_DECODE', `${x}`);
        throwsCode(() => op.inv(enc(x)), 'ERR_DECODE');
        throwsCode(() => op.op(op.random(), enc(x)), 'ERR_DECODE');
      }
      if (op.id === 'xor') op.check(new Uint8Array(32).fill(0xff));
    });
  });
}

describe('operator arithmetic against BigInt', () => {
  test('add-p and mul-p compute modulo p; mul-p inverse is a^(p−2)', () => {
    const add = splitOperators['add-p'];
    const mul = splitOperators['mul-p'];
    assert.ok(equalBytes(add.op(enc(P - 1n), enc(1n)), enc(0n)));
    assert.ok(equalBytes(mul.op(enc(P - 1n), enc(P - 1n)), enc(1n)));
    fc.assert(
      fc.property(
        fc.bigInt({ min: 1n, max: P - 1n }),
        fc.bigInt({ min: 1n, max: P - 1n }),
        (a, b) => {
          assert.equal(bytesToBig(add.op(enc(a), enc(b))), (a + b) % P);
          assert.equal(bytesToBig(add.inv(enc(a))), P - a);
          assert.equal(bytesToBig(mul.op(enc(a), enc(b))), (a * b) % P);
          assert.equal(bytesToBig(mul.inv(enc(a))), modPow(a, P - 2n, P));
        },
      ),
    );
    const x = new Uint8Array(32).fill(0x5a);
    const y = new Uint8Array(32).fill(0xff);
    assert.ok(equalBytes(splitOperators.xor.op(x, y), new Uint8Array(32).fill(0xa5)));
  });

  test('getSplitOperator', () => {
    for (const id of ['xor', 'add-p', 'mul-p'] as const) assert.equal(getSplitOperator(id).id, id);
    for (const id of ['', 'XOR', 'add', '__proto__', 'toString']) {
      throwsCode(() => getSplitOperator(id), 'ERR_UNSUPPORTED_SCHEME', id);
    }
  });
});
