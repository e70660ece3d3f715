/**
 * Vectors for mode threshold (SPEC.md §5.6), `test/vectors/mode-threshold.json`: the dealing of
 * d_A (coefficients, shares, Feldman commitments), each node's answer Y_j ‖ W_j to one blinded
 * request, the Lagrange coefficients and combination for every t-subset, and the appliance's item
 * secret and KEK. Every value comes from seededRng streams, so the file is reproducible.
 */
import { toB64u, utf8 } from '../../src/core/bytes.ts';
import { encodePoint, encodeScalar, randomScalar } from '../../src/core/group.ts';
import { sha256 } from '../../src/core/hash.ts';
import { homMode, type ItemRef, itemKek, MODE_CODES } from '../../src/core/protocol.ts';
import { seededRng } from '../../src/core/random.ts';
import { ecElGamal } from '../../src/core/schemes/ec-elgamal.ts';
import {
  combineSubset,
  dealShares,
  decodeNodeAnswer,
  lagrange,
  nodeAnswer,
  subsets,
} from '../../src/core/threshold.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

export interface ThresholdVectorFile {
  description: string;
  spec: string;
  seed: string;
  valid: Record<string, unknown>[];
  invalid: Record<string, unknown>[];
}

function seedOf(name: string): Uint8Array {
  return sha256(utf8(`blindfold/v1/vectors/${name}`));
}

function oneCase(label: string, t: number, n: number) {
  const caseSeed = sha256(seedOf('mode-threshold.json'), utf8(label));
  const rng = seededRng(caseSeed);
  const dA = randomScalar(rng);
  const D = ecElGamal.publicKeyOf(dA);
  // Coefficients come from the same stream, right after d_A (dealShares draws t − 1 scalars).
  const dealt = dealShares(new Uint8Array(dA) as typeof dA, { t, n }, rng);
  const masterSeed = rng(32);
  const M = ecElGamal.plaintextFromSeed(D, masterSeed);
  const concealed = ecElGamal.encrypt(D, M, rng);
  const { ciphertext: blinded, blind: rho } = ecElGamal.blind(D, concealed, rng);
  const shareKey = rng(32);
  const ref: ItemRef = {
    keyring: 'default',
    itemId: rng(16),
    masterVersion: 1,
    managerVersion: 1,
    entropy: rng(16),
  };
  const answers = dealt.shares.map((s) => ({
    index: s.index,
    answer: nodeAnswer(s.value as typeof dA, D, shareKey, ref, blinded),
  }));
  const decoded = answers.map((a) => decodeNodeAnswer(a.index, a.answer));
  const combinations = [...subsets(decoded, t)].map((sub) => ({
    nodes: sub.map((a) => a.index),
    lagrange: lagrange(sub.map((a) => a.index)).map((l) => hex(l)),
    combined: hex(encodePoint(combineSubset(sub))),
  }));
  const combined = combineSubset(decoded.slice(0, t));
  const secret = homMode.finish(ecElGamal, D, rho, combined);
  return {
    name: label,
    op: 'threshold',
    modeCode: MODE_CODES.threshold,
    t,
    n,
    caseSeed: hex(caseSeed),
    dealer: {
      dA: hex(encodeScalar(dA)),
      commitments: dealt.commitments.map((c) => hex(c)),
      shares: dealt.shares.map((s) => ({ index: s.index, value: hex(s.value) })),
    },
    keyRequests: dealt.shares.map((s) => ({
      managerVersion: 1,
      masterVersion: 1,
      share: {
        index: s.index,
        value: toB64u(s.value),
        commitments: dealt.commitments.map((c) => toB64u(c)),
      },
    })),
    appliance: {
      publicKey: hex(encodePoint(D)),
      masterSeed: hex(masterSeed),
      concealed: hex(ecElGamal.encodeCiphertext(D, concealed)),
      rho: hex(rho),
      blinded: hex(ecElGamal.encodeCiphertext(D, blinded)),
    },
    shareKey: hex(shareKey),
    item: { itemId: hex(ref.itemId), entropy: hex(ref.entropy) },
    answers: answers.map((a) => ({ index: a.index, answer: hex(a.answer) })),
    combinations,
    itemSecret: hex(secret),
    kek: hex(itemKek(secret, ref)),
  };
}

export type ThresholdCase = ReturnType<typeof oneCase>;
export interface ThresholdInvalid {
  name: string;
  op: 'verifyShare' | 'decodeAnswer';
  case?: string;
  index?: number;
  value?: string;
  answer?: string;
  error: string;
}

export function modeThresholdFile(): ThresholdVectorFile {
  const valid = [oneCase('2-of-3', 2, 3), oneCase('3-of-5', 3, 5), oneCase('1-of-2', 1, 2)];
  const first = valid[0]!;
  const share2 = first.dealer.shares[1]!.value;
  const answer1 = first.answers[0]!.answer;
  return {
    description:
      'Mode threshold (ec-elgamal): the appliance deals d_A (coefficients after d_A on the case stream), node j checks its share against the Feldman commitments and answers Y_j ‖ W_j = q_i·c2′ ‖ (q_i·d_j)·c1′ to the blinded request; every t-subset of answers combines (Lagrange at 0) to the same q_i·ρM, which the appliance unblinds to S_i and derives KEK_i from. Invalid cases: a share that is not on the committed polynomial (the node refuses it), malformed answers (the appliance treats the node as failed).',
    spec: 'SPEC.md §5.6',
    seed: hex(seedOf('mode-threshold.json')),
    valid,
    invalid: [
      {
        name: 'node 1 receives the share of node 2',
        op: 'verifyShare',
        case: '2-of-3',
        index: 1,
        value: share2,
        error: 'ERR_PARAMS',
      },
      {
        name: 'an answer of 63 bytes',
        op: 'decodeAnswer',
        answer: answer1.slice(0, 126),
        error: 'ERR_DECODE',
      },
      {
        name: 'W_j is the identity',
        op: 'decodeAnswer',
        answer: answer1.slice(0, 64) + '00'.repeat(32),
        error: 'ERR_IDENTITY',
      },
      {
        name: 'a zero share',
        op: 'verifyShare',
        case: '2-of-3',
        index: 1,
        value: '00'.repeat(32),
        error: 'ERR_IDENTITY',
      },
    ] satisfies ThresholdInvalid[] as Record<string, unknown>[],
  };
}
