/**
 * The manager's group operations on the recovery and creation hot paths (SPEC.md §5.3, §5.4),
 * as one pure function of encoded inputs, so that it can run on any thread: inline, or in a
 * worker of src/manager/pool.ts (the group operations run in libsodium WASM or BigInt and would
 * otherwise block the event loop that serves TLS and HTTP).
 *
 * A job carries exactly what its operation needs and nothing else (issue #9):
 *   hom2      the appliance key pair (pk, sk), the blinded ciphertext, the item share q;
 *   hom2-opt  pk, the stored X_A and q.
 * The keyring's share key (from which every item's q is derived) and ticket key never leave the
 * manager's main thread: q is derived there, after the ticket was verified (T6, SPEC.md §5 order).
 * Every secret byte array of a job is zeroed once the operation is done.
 */
import { zeroize } from '../core/bytes.ts';
import { BlindfoldError } from '../core/errors.ts';
import { getScheme } from '../core/schemes/index.ts';

export interface GroupJob {
  op: 'hom2' | 'hom2-opt';
  scheme: string;
  /** Encoded public key (public). */
  pk: Uint8Array;
  /** hom2: the encoded appliance secret key. */
  sk?: Uint8Array;
  /** hom2: the blinded ciphertext, as received (decoded and checked here). */
  blinded?: Uint8Array;
  /** hom2-opt: the encoded X_A. */
  x?: Uint8Array;
  /** The encoded item share q. */
  q: Uint8Array;
}

/** Computes the encoded answer of a job; zeroes the job's secrets whatever happens. */
export function runGroupJob(job: GroupJob): Uint8Array {
  try {
    const s = getScheme(job.scheme);
    const pk = s.decodePublicKey(job.pk);
    const q = s.decodeShare(pk, job.q);
    if (job.op === 'hom2') {
      if (!job.sk || !job.blinded) throw new BlindfoldError('ERR_INTERNAL', 'incomplete job');
      const ct = s.decodeCiphertext(pk, job.blinded);
      const sk = s.decodeSecretKey(job.sk);
      try {
        // homMode.answer with q derived by the caller: applyShare(Dec(C'), q), never Dec alone.
        return s.encodePlaintext(pk, s.applyShare(pk, s.decrypt(sk, ct), q));
      } finally {
        if (sk instanceof Uint8Array) zeroize(sk);
        if (q instanceof Uint8Array) zeroize(q);
      }
    }
    if (!job.x) throw new BlindfoldError('ERR_INTERNAL', 'incomplete job');
    const x = s.decodePlaintext(pk, job.x);
    try {
      // homMode.optAnswer with q derived by the caller: applyShare(X_A, q).
      return s.encodePlaintext(pk, s.applyShare(pk, x, q));
    } finally {
      if (x instanceof Uint8Array) zeroize(x);
      if (q instanceof Uint8Array) zeroize(q);
    }
  } finally {
    zeroize(...[job.sk, job.x, job.q].filter((b): b is Uint8Array => b !== undefined));
  }
}
