/**
 * The pure computations of the N-location modes hom3 and homN (SPEC.md §5.4): the appliance,
 * a chain of blinders C_1 … C_{N−2}, and the manager. Transport and storage live elsewhere
 * (src/blinder, src/manager, src/appliance).
 *
 *   appliance state   C_A = Enc_{D_A}(M ⊕ R),  R = R_1 ⊕ … ⊕ R_{N−2}
 *   blinder j state   E_j = Enc_{D_A}(R_j), made by sampleUnknown: R_j never exists in plain
 *   manager state     d_A (and the share key)
 *
 * Setup: the appliance sends Enc(M ⊕ T) for a fresh T (never Enc(M) itself, SPEC.md §10.1),
 * each blinder adds its E_j, the appliance removes T and keeps C_A.
 * Request: the appliance sends C_0 = Enc(M ⊕ R ⊕ T); blinder j removes R_j; the manager decrypts
 * M ⊕ T (uniform to it) and applies the item share; the appliance removes T.
 *
 * ec-elgamal's share acts in the exponent (q·X), so T cannot simply be XORed out of the answer:
 * the appliance also sends W = σ·T and the manager answers q·(M + T) ‖ q·W, from which the
 * appliance computes q·T = σ⁻¹·(q·W) and S_i = q·(M + T) − q·T = q·M.
 */
import { concat, lp16, u32be, u64be, utf8 } from './bytes.ts';
import { BlindfoldError } from './errors.ts';
import { mul, type Scalar, scalarInvert } from './group.ts';
import type { ItemRef } from './protocol.ts';
import { shareSeed } from './protocol.ts';
import type { Rng } from './random.ts';
import type { HomomorphicScheme } from './schemes/scheme.ts';

/** The appliance's secret state of one request: T (and σ for ec-elgamal). */
export interface ChainBlind {
  t: unknown;
  sigma?: Scalar;
}

const isEc = (s: HomomorphicScheme) => s.id === 'ec-elgamal';

export const chainMode = {
  /**
   * Setup at the appliance: Enc(M) blinded by a fresh uniform T before any blinder sees it.
   * ec-elgamal: T a random point, added; the others: the scheme's own blinding (paillier T
   * uniform in Z_n, rsa a uniform unit, gm 32 random bytes), i.e. Enc(M) ⊕ Enc(T).
   */
  setupRequest<PK, CT, PT>(
    s: HomomorphicScheme<PK, unknown, CT, PT>,
    pk: PK,
    encMaster: CT,
    rng?: Rng,
  ): { ciphertext: CT; t: PT } {
    if (isEc(s)) {
      const t = s.randomPlaintext(pk, rng);
      return { ciphertext: s.rerandomize(pk, s.combinePlain(pk, encMaster, t), rng), t };
    }
    const { ciphertext, blind } = s.blind(pk, encMaster, rng);
    return { ciphertext, t: blindAsPlaintext(s, blind) as PT };
  },

  /** Setup at the appliance, after the blinders: Enc(M ⊕ R ⊕ T) ⊖ T = C_A, fresh randomness. */
  setupFinish<PK, CT, PT>(
    s: HomomorphicScheme<PK, unknown, CT, PT>,
    pk: PK,
    returned: CT,
    t: PT,
    rng?: Rng,
  ): CT {
    return s.rerandomize(pk, s.combinePlain(pk, returned, s.inv(pk, t)), rng);
  },

  /** Setup at blinder j: C ⊕ E_j, rerandomized (E_j must not be recoverable from the output). */
  blinderSetup<PK, CT>(s: HomomorphicScheme<PK, unknown, CT>, pk: PK, c: CT, e: CT, rng?: Rng): CT {
    return s.rerandomize(pk, s.combine(pk, c, e), rng);
  },

  /**
   * Request at blinder j: C_j = rerandomize(C_{j−1} ⊖ E_j). One rerandomization suffices: the
   * difference C_{j−1} − C_j is then a fresh rerandomization of E_j, exactly as it would be with a
   * second one inside (which would cost another two scalar multiplications per hop).
   */
  blinderForward<PK, CT>(
    s: HomomorphicScheme<PK, unknown, CT>,
    pk: PK,
    c: CT,
    e: CT,
    rng?: Rng,
  ): CT {
    return s.rerandomize(pk, s.uncombine(pk, c, e), rng);
  },

  /**
   * Request at the appliance: C_0 = C_A ⊕ Enc(T) for a fresh uniform T (the scheme's blinding for
   * paillier, rsa and gm; a random point for ec-elgamal, with W = σ·T).
   */
  request<PK, CT, PT>(
    s: HomomorphicScheme<PK, unknown, CT, PT>,
    pk: PK,
    concealed: CT,
    rng?: Rng,
  ): { ciphertext: CT; aux?: Uint8Array; blind: ChainBlind } {
    if (!isEc(s)) {
      const { ciphertext, blind } = s.blind(pk, concealed, rng);
      return { ciphertext, blind: { t: blind } };
    }
    const t = s.randomPlaintext(pk, rng);
    const ciphertext = s.rerandomize(pk, s.combinePlain(pk, concealed, t), rng);
    const sigma = s.randomShare(pk, rng) as Scalar;
    const w = s.applyShare(pk, t, sigma);
    return { ciphertext, aux: s.encodePlaintext(pk, w), blind: { t, sigma } };
  },

  /**
   * At the manager: Dec(C) = M ⊕ T, then the item share. ec-elgamal: q·(M + T) ‖ q·W (64 bytes);
   * the other schemes: (M ⊕ T) ⊛ Q_i, which for them is (M ⊕ T) ⊕ Q_i.
   */
  answer<PK, SK, CT, PT>(
    s: HomomorphicScheme<PK, SK, CT, PT>,
    sk: SK,
    pk: PK,
    c: CT,
    aux: Uint8Array | undefined,
    shareKey: Uint8Array,
    ref: ItemRef,
  ): Uint8Array {
    if (isEc(s) !== (aux !== undefined)) {
      throw new BlindfoldError(
        'ERR_INVALID_ARGUMENT',
        isEc(s) ? 'ec-elgamal chain requests need aux (W = σ·T)' : 'this scheme takes no aux',
      );
    }
    const w = aux === undefined ? undefined : s.decodePlaintext(pk, aux);
    const q = s.shareFromSeed(pk, shareSeed(shareKey, ref));
    const a1 = s.encodePlaintext(pk, s.applyShare(pk, s.decrypt(sk, c), q));
    if (w === undefined) return a1;
    return concat(a1, s.encodePlaintext(pk, s.applyShare(pk, w, q)));
  },

  /** At the appliance: S_i from the answer, as secretBytes. Throws ERR_DECODE on a bad length. */
  finish<PK, PT>(
    s: HomomorphicScheme<PK, unknown, unknown, PT>,
    pk: PK,
    blind: ChainBlind,
    answer: Uint8Array,
  ): Uint8Array {
    if (!isEc(s)) {
      const y = s.decodePlaintext(pk, answer);
      return s.secretBytes(pk, s.unblind(pk, blind.t, y));
    }
    if (answer.length !== 64 || !blind.sigma) {
      throw new BlindfoldError('ERR_DECODE', 'an ec-elgamal chain answer is 64 bytes');
    }
    const a1 = s.decodePlaintext(pk, answer.subarray(0, 32));
    const a2 = s.decodePlaintext(pk, answer.subarray(32)) as never;
    const qT = mul(scalarInvert(blind.sigma), a2) as PT;
    return s.secretBytes(pk, s.op(pk, a1, s.inv(pk, qT)));
  },

  wipe(s: HomomorphicScheme, blind: ChainBlind): void {
    if (blind.sigma) blind.sigma.fill(0);
    if (isEc(s)) (blind.t as Uint8Array).fill(0);
    else s.wipeBlind(blind.t);
  },
};

/** The plaintext T behind a scheme's blinding (paillier, rsa: Z as an integer; gm: Z itself). */
function blindAsPlaintext(s: HomomorphicScheme, blind: unknown): unknown {
  return s.id === 'gm' ? new Uint8Array(blind as Uint8Array) : (blind as { z: bigint }).z;
}

/**
 * What the appliance signs for a request relayed by blinders (SPEC.md §5.4 "Authentication along
 * the chain"): every field the blinders pass on unchanged, so that no blinder can make a request
 * in the appliance's name that the appliance did not make. The ciphertext is not covered (each
 * hop changes it).
 */
export function chainRequestStatement(e: {
  op: 'create' | 'recover';
  applianceId: string;
  keyring: string;
  itemId: Uint8Array;
  masterVersion: number;
  managerVersion: number;
  entropy: Uint8Array;
  ticket: Uint8Array;
  ttlSeconds: number;
  aux: Uint8Array;
  issuedAt: number;
  nonce: Uint8Array;
}): Uint8Array {
  return concat(
    utf8('blindfold/v1/chain-request'),
    Uint8Array.of(0),
    lp16(utf8(e.op)),
    lp16(utf8(e.applianceId)),
    lp16(utf8(e.keyring)),
    lp16(e.itemId),
    u32be(e.masterVersion),
    u32be(e.managerVersion),
    lp16(e.entropy),
    lp16(e.ticket),
    u32be(e.ttlSeconds),
    lp16(e.aux),
    u64be(e.issuedAt),
    lp16(e.nonce),
  );
}
