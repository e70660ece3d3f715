/**
 * t-of-n threshold managers (SPEC.md §5.6): Shamir sharing of an appliance's EC-ElGamal secret key
 * d_A over Z_ℓ with Feldman commitments, each node's partial answer, and the appliance's
 * combination with Lagrange coefficients. Pure (no I/O), so that the vectors, the manager nodes
 * and the appliance share one implementation.
 *
 *   deal      f(x) = d_A + a_1·x + … + a_{t−1}·x^{t−1};  node j gets d_j = f(j);  A_k = a_k·B
 *   verify    d_j·B = Σ_k j^k·A_k   (Feldman: every node checks its own share)
 *   answer    Y_j ‖ W_j = q_i·c2' ‖ (q_i·d_j)·c1'          (no node ever decrypts)
 *   combine   q_i·ρM = Y − Σ_{j∈J} λ_j·W_j,  λ_j = Π_{k∈J, k≠j} k/(k − j)
 */
import { concat, equalBytes, zeroize } from './bytes.ts';
import { BlindfoldError } from './errors.ts';
import {
  add,
  decodePoint,
  decodeScalar,
  encodePoint,
  equalPoints,
  L,
  mul,
  mulBase,
  POINT_BYTES,
  type Point,
  randomScalar,
  type Scalar,
  scalarAdd,
  scalarFromBigInt,
  scalarMul,
  sub,
} from './group.ts';
import { type ItemRef, shareSeed } from './protocol.ts';
import { type Rng, systemRng } from './random.ts';
import { ecElGamal } from './schemes/ec-elgamal.ts';

/** Largest n accepted (node indices are 1..n; a t-subset search stays small). */
export const MAX_NODES = 16;

export interface ThresholdParams {
  t: number;
  n: number;
}

export function checkThresholdParams(p: ThresholdParams): void {
  const ok =
    Number.isInteger(p.t) &&
    Number.isInteger(p.n) &&
    p.t >= 1 &&
    p.n >= 2 &&
    p.n <= MAX_NODES &&
    p.t <= p.n;
  if (!ok) {
    throw new BlindfoldError(
      'ERR_INVALID_ARGUMENT',
      `threshold must be t-of-n with 1 ≤ t ≤ n and 2 ≤ n ≤ ${MAX_NODES}`,
    );
  }
}

export interface DealtShare {
  index: number;
  /** d_j = f(j), 32 bytes little-endian. */
  value: Uint8Array;
}

/**
 * The dealer's step (SPEC.md §5.6): shares of `secret` for nodes 1..n and the Feldman
 * commitments A_0 = secret·B, A_k = a_k·B. The coefficients are wiped before returning; the
 * caller wipes `secret` and the shares once they are delivered.
 */
export function dealShares(
  secret: Scalar,
  p: ThresholdParams,
  rng: Rng = systemRng,
): { shares: DealtShare[]; commitments: Uint8Array[] } {
  checkThresholdParams(p);
  const coeffs: Scalar[] = [secret];
  for (let k = 1; k < p.t; k++) coeffs.push(randomScalar(rng));
  try {
    const commitments = coeffs.map((a) => encodePoint(mulBase(a)));
    const shares: DealtShare[] = [];
    for (let j = 1; j <= p.n; j++) {
      // Horner: f(j) = (((a_{t−1})·j + a_{t−2})·j + …)·j + a_0
      const x = scalarFromBigInt(BigInt(j));
      let acc = new Uint8Array(coeffs[p.t - 1]!) as Scalar;
      for (let k = p.t - 2; k >= 0; k--) {
        const prod = scalarMul(acc, x);
        const next = scalarAdd(prod, coeffs[k]!);
        zeroize(prod);
        zeroize(acc);
        acc = next;
      }
      // f(j) = 0 happens with probability ~2^-252; a zero share would be refused by the node.
      if (acc.every((b) => b === 0)) throw new BlindfoldError('ERR_INTERNAL', 'zero share');
      shares.push({ index: j, value: acc });
    }
    return { shares, commitments };
  } finally {
    for (let k = 1; k < coeffs.length; k++) zeroize(coeffs[k]!);
  }
}

/**
 * Feldman's check, run by node `index` on the share it receives: d_j·B = Σ_k index^k·A_k.
 * Returns the decoded share and A_0 = D_A. ERR_DECODE/ERR_IDENTITY for malformed bytes,
 * ERR_PARAMS when the share is not on the committed polynomial.
 */
export function verifyShare(
  index: number,
  value: Uint8Array,
  commitments: Uint8Array[],
): { share: Scalar; publicKey: Point } {
  if (!Number.isInteger(index) || index < 1 || index > MAX_NODES) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', `node index must be 1..${MAX_NODES}`);
  }
  const share = decodeScalar(value, 'share');
  const points = commitments.map((c, k) => decodePoint(c, `commitment ${k}`));
  let expected = points[points.length - 1]!;
  const x = scalarFromBigInt(BigInt(index));
  for (let k = points.length - 2; k >= 0; k--) expected = add(mul(x, expected), points[k]!);
  if (!equalPoints(mulBase(share), expected)) {
    zeroize(share);
    throw new BlindfoldError(
      'ERR_PARAMS',
      `the share for node ${index} does not lie on the committed polynomial (Feldman check failed)`,
    );
  }
  return { share, publicKey: points[0]! };
}

/** A node's answer (SPEC.md §5.6): Y_j ‖ W_j = q_i·c2' ‖ (q_i·d_j)·c1', 64 bytes. */
export function nodeAnswer(
  share: Scalar,
  publicKey: Point,
  shareKey: Uint8Array,
  ref: ItemRef,
  blinded: { c1: Point; c2: Point },
): Uint8Array {
  const seed = shareSeed(shareKey, ref);
  const q = ecElGamal.shareFromSeed(publicKey, seed);
  zeroize(seed);
  try {
    return nodeAnswerWithShare(share, q, blinded);
  } finally {
    zeroize(q);
  }
}

/**
 * nodeAnswer with the item share q already derived (the manager derives it on its main thread and
 * runs this on a worker, src/manager/group-ops.ts): q·c2' ‖ (q·d_j)·c1'.
 */
export function nodeAnswerWithShare(
  share: Scalar,
  q: Scalar,
  blinded: { c1: Point; c2: Point },
): Uint8Array {
  const qd = scalarMul(q, share);
  try {
    return concat(encodePoint(mul(q, blinded.c2)), encodePoint(mul(qd, blinded.c1)));
  } finally {
    zeroize(qd);
  }
}

export interface PartialAnswer {
  index: number;
  y: Point;
  w: Point;
}

/** Decodes a node's 64-byte answer; ERR_DECODE/ERR_IDENTITY make it a garbage answer. */
export function decodeNodeAnswer(index: number, bytes: Uint8Array): PartialAnswer {
  if (bytes.length !== 2 * POINT_BYTES) {
    throw new BlindfoldError('ERR_DECODE', `a threshold answer is ${2 * POINT_BYTES} bytes`);
  }
  return {
    index,
    y: decodePoint(bytes.subarray(0, POINT_BYTES), 'Y'),
    w: decodePoint(bytes.subarray(POINT_BYTES), 'W'),
  };
}

function mod(x: bigint): bigint {
  return ((x % L) + L) % L;
}

function invMod(x: bigint): bigint {
  // Fermat: ℓ is prime.
  let r = 1n;
  let b = mod(x);
  let e = L - 2n;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % L;
    b = (b * b) % L;
    e >>= 1n;
  }
  return r;
}

const lagrangeCache = new Map<string, Scalar[]>();

/**
 * Lagrange coefficients λ_j for interpolating at `at` from the nodes `indices` (distinct). They
 * are public and depend only on the indices, so they are computed once per subset.
 */
export function lagrange(indices: number[], at = 0): Scalar[] {
  if (new Set(indices).size !== indices.length) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'node indices must be distinct');
  }
  const key = `${at}|${indices.join(',')}`;
  const hit = lagrangeCache.get(key);
  if (hit) return hit;
  const out = indices.map((j) => {
    let num = 1n;
    let den = 1n;
    for (const k of indices) {
      if (k === j) continue;
      num = (num * mod(BigInt(at - k))) % L;
      den = (den * mod(BigInt(j - k))) % L;
    }
    return scalarFromBigInt((num * invMod(den)) % L);
  });
  if (lagrangeCache.size < 4096) lagrangeCache.set(key, out);
  return out;
}

function interpolate(subset: PartialAnswer[], at: number): Point {
  const lambdas = lagrange(
    subset.map((a) => a.index),
    at,
  );
  let acc: Point | null = null;
  for (let i = 0; i < subset.length; i++) {
    const term = mul(lambdas[i]!, subset[i]!.w);
    acc = acc === null ? term : add(acc, term);
  }
  return acc!;
}

/** q_i·ρM = Y − Σ λ_j·W_j for a t-subset whose Y agree (the caller checked). */
export function combineSubset(subset: PartialAnswer[]): Point {
  return sub(subset[0]!.y, interpolate(subset, 0));
}

/** Every t-element subset of `items`, in lexicographic order of positions. */
export function* subsets<T>(items: T[], t: number, from = 0, acc: T[] = []): Generator<T[]> {
  if (acc.length === t) {
    yield [...acc];
    return;
  }
  for (let i = from; i <= items.length - (t - acc.length); i++) {
    acc.push(items[i]!);
    yield* subsets(items, t, i + 1, acc);
    acc.pop();
  }
}

function sameY(subset: PartialAnswer[]): boolean {
  return subset.every((a) => equalBytes(a.y, subset[0]!.y));
}

/**
 * Cross-check (SPEC.md §5.6): the t-subset of `answers` whose interpolated W-polynomial and Y
 * agree with the most other answers. Honest answers lie on one polynomial of degree t − 1 in the
 * exponent, so a subset containing a wrong W_j agrees with no other honest answer. Returns null
 * when no subset has agreeing Y. `agreements` counts the answers outside the subset that agree.
 */
export function bestSubset(
  answers: PartialAnswer[],
  t: number,
): { subset: PartialAnswer[]; agreements: number } | null {
  let best: { subset: PartialAnswer[]; agreements: number } | null = null;
  const extras = answers.length - t;
  for (const subset of subsets(answers, t)) {
    if (!sameY(subset)) continue;
    let agreements = 0;
    for (const other of answers) {
      if (subset.includes(other)) continue;
      if (
        equalBytes(other.y, subset[0]!.y) &&
        equalPoints(interpolate(subset, other.index), other.w)
      ) {
        agreements++;
      }
    }
    if (best === null || agreements > best.agreements) best = { subset, agreements };
    if (agreements === extras) break;
  }
  return best;
}
