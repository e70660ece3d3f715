/**
 * The pure computations of every party in the 2-location modes (SPEC.md §5), independent of
 * transport and storage. The manager, appliance and SDK call these; the test vectors are made
 * from them.
 *
 * Notation (SPEC.md §1): M the master key, Q_i the manager's share for item i, S_i = M ⊛ Q_i the
 * item secret, KEK_i = KDF(S_i, ...) the key that wraps the item's data key.
 *
 *   split     appliance holds M ⊕ r_A; manager holds r_A; manager returns Q_i ⊖ r_A.
 *   hom2      appliance holds Enc_{D_A}(M); sends blind(Enc(M)); manager returns
 *             applyShare(Dec(C'), Q_i); appliance unblinds.
 *   hom2-opt  appliance holds Enc_{D_A}(M) and β_A; manager holds X_A = Dec(blind_β(Enc(M)));
 *             manager returns applyShare(X_A, Q_i) in one round trip; appliance unblinds with β_A.
 */
import { concat, lp16, u32be, utf8 } from './bytes.ts';
import { BlindfoldError } from './errors.ts';
import { deriveKey, hmacSha256 } from './hash.ts';
import type { SplitOperator } from './operators.ts';
import type { Rng } from './random.ts';
import { systemRng } from './random.ts';
import type { HomomorphicScheme } from './schemes/scheme.ts';

export const MODES = ['split', 'hom2', 'hom2-opt', 'hom3', 'homN', 'threshold'] as const;
export type Mode = (typeof MODES)[number];

/** Mode codes as they appear in file headers (SPEC.md §6.1). */
export const MODE_CODES: Record<Mode, number> = {
  split: 1,
  hom2: 2,
  'hom2-opt': 3,
  hom3: 4,
  homN: 5,
  threshold: 6, // t-of-n manager nodes (SPEC.md §5.6)
};

/** The modes whose requests travel through a chain of blinders (SPEC.md §5.4). */
export type ChainMode = 'hom3' | 'homN';
export function isChainMode(x: unknown): x is ChainMode {
  return x === 'hom3' || x === 'homN';
}

export function isMode(x: unknown): x is Mode {
  return typeof x === 'string' && (MODES as readonly string[]).includes(x);
}

export interface ItemRef {
  keyring: string;
  itemId: Uint8Array; // 16 bytes
  masterVersion: number;
  managerVersion: number;
  /** Appliance-supplied entropy mixed into the share (seed: "optionally with appliance entropy"). */
  entropy: Uint8Array;
}

/** The context every per-item derivation binds (SPEC.md §4.2). */
export function itemContext(ref: ItemRef): Uint8Array {
  if (ref.itemId.length !== 16) throw new BlindfoldError('ERR_DECODE', 'item id must be 16 bytes');
  return concat(
    lp16(utf8(ref.keyring)),
    ref.itemId,
    u32be(ref.masterVersion),
    u32be(ref.managerVersion),
    lp16(ref.entropy),
  );
}

/**
 * The seed of the manager's share for an item: a PRF of the keyring's share key, so the manager
 * stores no per-item secret (SPEC.md §4.2; the seed allows "the PVKM does not store the
 * encrypted keys in its database").
 */
export function shareSeed(shareKey: Uint8Array, ref: ItemRef): Uint8Array {
  return hmacSha256(shareKey, utf8('blindfold/v1/item-share'), Uint8Array.of(0), itemContext(ref));
}

/** KEK_i = HKDF(S_i, "blindfold/v1/item-kek" ‖ 0 ‖ context) (SPEC.md §4.3). */
export function itemKek(itemSecret: Uint8Array, ref: ItemRef): Uint8Array {
  return deriveKey(itemSecret, 'item-kek', itemContext(ref), 32);
}

// ---------------------------------------------------------------------------------------------
// split mode (seed: "split key encryption with a blinded key")

export const splitMode = {
  /** Sub-process I at the appliance: blind M with a fresh r and forget both M and r. */
  conceal(op: SplitOperator, master: Uint8Array, rng: Rng = systemRng) {
    const r = op.random(rng);
    return { blindedMaster: op.op(master, r), r };
  },
  /** Sub-process II/III at the manager: Q_i ⊖ r_A, a value useless without M ⊕ r_A. */
  answer(op: SplitOperator, r: Uint8Array, shareKey: Uint8Array, ref: ItemRef): Uint8Array {
    const q = op.fromSeed(shareSeed(shareKey, ref));
    const out = op.op(q, op.inv(r));
    q.fill(0);
    return out;
  },
  /** At the appliance: (M ⊕ r_A) ⊕ (Q_i ⊖ r_A) = M ⊕ Q_i = S_i. */
  finish(op: SplitOperator, blindedMaster: Uint8Array, answer: Uint8Array): Uint8Array {
    op.check(answer);
    return op.op(blindedMaster, answer);
  },
};

// ---------------------------------------------------------------------------------------------
// hom2 and hom2-opt (seed: "2-location homomorphic blinding", and its optimized variant)

export const homMode = {
  /** Sub-process I at the appliance (or browser): Enc_{D_A}(M), then M is wiped by the caller. */
  conceal<PK, PT>(s: HomomorphicScheme<PK, unknown, unknown, PT>, pk: PK, m: PT, rng?: Rng) {
    return s.encrypt(pk, m, rng);
  },

  /** hom2 sub-process III at the appliance: a freshly blinded copy of Enc(M). */
  request<PK, CT, BL>(
    s: HomomorphicScheme<PK, unknown, CT, unknown, unknown, BL>,
    pk: PK,
    concealed: CT,
    rng?: Rng,
  ) {
    return s.blind(pk, concealed, rng);
  },

  /** hom2 sub-process III at the manager: applyShare(Dec(C'), Q_i); never a plain decryption. */
  answer<PK, SK, CT, PT, SH>(
    s: HomomorphicScheme<PK, SK, CT, PT, SH>,
    sk: SK,
    pk: PK,
    blinded: CT,
    shareKey: Uint8Array,
    ref: ItemRef,
  ): PT {
    const q = s.shareFromSeed(pk, shareSeed(shareKey, ref));
    return s.applyShare(pk, s.decrypt(sk, blinded), q);
  },

  /** hom2-opt sub-process I at the manager: X_A = Dec(blind_β(Enc(M))) is kept, sealed. */
  optSetup<SK, CT, PT>(s: HomomorphicScheme<unknown, SK, CT, PT>, sk: SK, blinded: CT): PT {
    return s.decrypt(sk, blinded);
  },

  /** hom2-opt sub-processes II and III at the manager: applyShare(X_A, Q_i). */
  optAnswer<PK, PT, SH>(
    s: HomomorphicScheme<PK, unknown, unknown, PT, SH>,
    pk: PK,
    x: PT,
    shareKey: Uint8Array,
    ref: ItemRef,
  ): PT {
    const q = s.shareFromSeed(pk, shareSeed(shareKey, ref));
    return s.applyShare(pk, x, q);
  },

  /** At the appliance, both modes: remove the blinding and encode S_i. */
  finish<PK, PT, BL>(
    s: HomomorphicScheme<PK, unknown, unknown, PT, unknown, BL>,
    pk: PK,
    blind: BL,
    answer: PT,
  ): Uint8Array {
    const secret = s.unblind(pk, blind, answer);
    return s.secretBytes(pk, secret);
  },

  /** `finish` with an unblinder made once for a reused blind (hom2-opt's β_A; scheme.unblinder). */
  finishWith<PK, PT>(
    s: HomomorphicScheme<PK, unknown, unknown, PT>,
    pk: PK,
    unblind: (y: PT) => PT,
    answer: PT,
  ): Uint8Array {
    return s.secretBytes(pk, unblind(answer));
  },
};

// ---------------------------------------------------------------------------------------------
// Re-concealment (SPEC.md §5.5): move a concealed master to another manager key (rotation) or,
// later, to another appliance (vouching, §5.7) without anyone seeing M.

export const reconceal = {
  /** split, at the appliance: a fresh δ; the new blinded master is (M ⊕ r) ⊕ δ = M ⊕ (r ⊕ δ). */
  splitRequest(op: SplitOperator, blindedMaster: Uint8Array, rng: Rng = systemRng) {
    const delta = op.random(rng);
    return { delta, blindedMaster: op.op(blindedMaster, delta) };
  },
  /** split, at the manager: r' = r ⊕ δ, the blinding that matches the new blinded master. */
  splitAnswer(op: SplitOperator, r: Uint8Array, delta: Uint8Array): Uint8Array {
    op.check(delta);
    return op.op(r, delta);
  },
};
