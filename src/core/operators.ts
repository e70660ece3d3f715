/**
 * The operators of the non-homomorphic split mode (SPEC.md §5.1): the seed's "XOR,
 * multiplication modulus p, addition modulus p". The appliance holds M ⊕ r_A, the manager r_A and
 * the item shares Q_i; the manager answers Q_i ⊖ r_A. Each operator is a group on 32-byte
 * big-endian elements:
 *
 *   xor     {0,1}^256 under XOR            neutral 0, inverse a itself
 *   add-p   Z_p under addition             elements in [0, p), neutral 0, inverse p − a
 *   mul-p   Z_p^* under multiplication     elements in [1, p), neutral 1, inverse a^(p−2)
 *
 * with p = 2^256 − 189, the largest prime below 2^256 (test/operators.test.ts re-proves its
 * primality), so that both Z_p groups fill almost all of the 32-byte space. `random` and
 * `fromSeed` never return the neutral element: a neutral r_A or Q_i would publish M or M ⊕ r_A.
 *
 * Timing: add-p and mul-p use BigInt, which is not constant time (bigint.ts); xor is.
 */

import { modInv, randomBelow } from './bigint.ts';
import { bigToBytes, bytesToBig, equalBytes, u8 } from './bytes.ts';
import { BlindfoldError, decodeError } from './errors.ts';
import { deriveKey } from './hash.ts';
import { type Rng, systemRng } from './random.ts';

export type SplitOperatorId = 'xor' | 'add-p' | 'mul-p';

export interface SplitOperator {
  readonly id: SplitOperatorId;
  /** Bytes of every element. */
  readonly size: 32;
  /** A uniform element other than the neutral one. */
  random(rng?: Rng): Uint8Array;
  /**
   * A (statistically) uniform non-neutral element from a 32-byte uniform seed: attempt i expands
   * deriveKey(seed, "split/<id>/element", ctx, len) with ctx empty for i = 0 and the byte i
   * afterwards; len is 32 for xor and 48 (256 + 128 bits, then reduced) for add-p and mul-p.
   */
  fromSeed(seed: Uint8Array): Uint8Array;
  op(a: Uint8Array, b: Uint8Array): Uint8Array;
  /** The inverse: op(op(x, a), inv(a)) = x. */
  inv(a: Uint8Array): Uint8Array;
  /** Throws ERR_DECODE unless b is the encoding of an element. */
  check(b: Uint8Array): void;
}

/** p = 2^256 − 189 (SPEC.md §5.1). */
export const SPLIT_P: bigint = (1n << 256n) - 189n;

const SIZE = 32;
const WIDE = 48;

function checkSeed(seed: Uint8Array): void {
  if (!(seed instanceof Uint8Array) || seed.length !== SIZE) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', `seed must be ${SIZE} bytes`);
  }
}

function checkLength(b: Uint8Array, id: SplitOperatorId): void {
  if (!(b instanceof Uint8Array) || b.length !== SIZE) {
    throw decodeError(`${id} element`, `expected ${SIZE} bytes`);
  }
}

function expand<T>(
  seed: Uint8Array,
  id: SplitOperatorId,
  len: number,
  map: (b: Uint8Array) => T,
  ok: (x: T) => boolean,
): T {
  checkSeed(seed);
  for (let i = 0; i < 256; i++) {
    const b = deriveKey(seed, `split/${id}/element`, i === 0 ? new Uint8Array(0) : u8(i), len);
    const x = map(b);
    b.fill(0);
    if (ok(x)) return x;
  }
  throw new BlindfoldError('ERR_INTERNAL', 'seed expansion failed 256 times');
}

const ZERO = new Uint8Array(SIZE);

const xor: SplitOperator = {
  id: 'xor',
  size: SIZE,
  random(rng: Rng = systemRng) {
    for (;;) {
      const b = rng(SIZE);
      if (!equalBytes(b, ZERO)) return b;
    }
  },
  fromSeed(seed) {
    return expand(
      seed,
      'xor',
      SIZE,
      (b) => b.slice(),
      (b) => !equalBytes(b, ZERO),
    );
  },
  op(a, b) {
    xor.check(a);
    xor.check(b);
    const out = new Uint8Array(SIZE);
    for (let i = 0; i < SIZE; i++) out[i] = a[i]! ^ b[i]!;
    return out;
  },
  inv(a) {
    xor.check(a);
    return a.slice();
  },
  check(b) {
    checkLength(b, 'xor');
  },
};

/** Reads a checked element of Z_p (lo = 0) or Z_p^* (lo = 1). */
function element(b: Uint8Array, id: SplitOperatorId, lo: bigint): bigint {
  checkLength(b, id);
  const x = bytesToBig(b);
  if (x < lo || x >= SPLIT_P) throw decodeError(`${id} element`, 'out of range');
  return x;
}

const enc = (x: bigint): Uint8Array => bigToBytes(x, SIZE);

const addP: SplitOperator = {
  id: 'add-p',
  size: SIZE,
  random(rng: Rng = systemRng) {
    return enc(1n + randomBelow(SPLIT_P - 1n, rng));
  },
  fromSeed(seed) {
    return enc(
      expand(
        seed,
        'add-p',
        WIDE,
        (b) => bytesToBig(b) % SPLIT_P,
        (x) => x !== 0n,
      ),
    );
  },
  op(a, b) {
    return enc((element(a, 'add-p', 0n) + element(b, 'add-p', 0n)) % SPLIT_P);
  },
  inv(a) {
    return enc((SPLIT_P - element(a, 'add-p', 0n)) % SPLIT_P);
  },
  check(b) {
    element(b, 'add-p', 0n);
  },
};

const mulP: SplitOperator = {
  id: 'mul-p',
  size: SIZE,
  random(rng: Rng = systemRng) {
    return enc(2n + randomBelow(SPLIT_P - 2n, rng));
  },
  fromSeed(seed) {
    // Uniform in [1, p) up to 2^-128: reduce modulo p − 1, then shift by one.
    return enc(
      expand(
        seed,
        'mul-p',
        WIDE,
        (b) => (bytesToBig(b) % (SPLIT_P - 1n)) + 1n,
        (x) => x !== 1n,
      ),
    );
  },
  op(a, b) {
    return enc((element(a, 'mul-p', 1n) * element(b, 'mul-p', 1n)) % SPLIT_P);
  },
  inv(a) {
    return enc(modInv(element(a, 'mul-p', 1n), SPLIT_P));
  },
  check(b) {
    element(b, 'mul-p', 1n);
  },
};

export const splitOperators: Record<SplitOperatorId, SplitOperator> = {
  xor,
  'add-p': addP,
  'mul-p': mulP,
};

export function getSplitOperator(id: string): SplitOperator {
  if (!Object.hasOwn(splitOperators, id)) {
    throw new BlindfoldError('ERR_UNSUPPORTED_SCHEME', `unknown split operator: ${id}`);
  }
  return splitOperators[id as SplitOperatorId];
}
