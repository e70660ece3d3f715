/**
 * The manager's group operations on the recovery and creation hot paths (SPEC.md §5.3-§5.6,
 * §5.8), as one pure function of encoded inputs, so that it can run on any thread: inline, or in
 * a worker of src/manager/pool.ts (the group operations run in libsodium WASM or BigInt and would
 * otherwise block the event loop that serves TLS and HTTP).
 *
 * A job carries exactly what its operation needs and nothing else (issue #9):
 *   hom2       the appliance key pair (pk, sk), the blinded ciphertext, the item share q; for
 *              hom3/homN (chain requests relayed by the last blinder) also aux = W = σ·T
 *              (ec-elgamal), answered with q·W (SPEC.md §5.4);
 *   hom2-opt   pk, the stored X_A and q;
 *   threshold  the node's public key, its key share d_j (in sk), the blinded ciphertext and q
 *              (SPEC.md §5.6: q·c2' ‖ (q·d_j)·c1'; the node never decrypts);
 * and, for a client-blinded KMS key (SPEC.md §5.8, hom2 and hom2-opt on ec-elgamal), the client
 * key U, to which the answer is encrypted before it leaves the worker.
 * The keyring's share key (from which every item's q is derived) and ticket key never leave the
 * manager's main thread: q is derived there, after the ticket was verified (T6, SPEC.md §5 order).
 * Every secret byte array of a job is zeroed once the operation is done.
 */
import { concat, zeroize } from '../core/bytes.ts';
import { BlindfoldError } from '../core/errors.ts';
import { decodePoint, decodeScalar } from '../core/group.ts';
import { encryptToClient } from '../core/kms.ts';
import {
  answerFromEncoded,
  type EcShare,
  ecElGamal,
  shareOfEncoded,
} from '../core/schemes/ec-elgamal.ts';
import { getScheme } from '../core/schemes/index.ts';
import { nodeAnswerWithShare } from '../core/threshold.ts';

export type GroupOp = 'hom2' | 'hom2-opt' | 'threshold';

export interface GroupJob {
  op: GroupOp;
  scheme: string;
  /** Encoded public key (public). */
  pk: Uint8Array;
  /** hom2: the encoded appliance secret key; threshold: the node's key share d_j. */
  sk?: Uint8Array;
  /** hom2, threshold: the blinded ciphertext, as received (decoded and checked here). */
  blinded?: Uint8Array;
  /** hom2-opt: the encoded X_A. */
  x?: Uint8Array;
  /** The encoded item share q. */
  q: Uint8Array;
  /** hom2 for hom3/homN on ec-elgamal: W = σ·T, as relayed (public to the manager). */
  aux?: Uint8Array;
  /** Client-blinded keys: the client's public key U; the answer is Enc_U(answer). */
  client?: Uint8Array;
}

/**
 * Decoded public keys, per thread: every job of an appliance and key version carries the same
 * public key, and decoding it (point validation, 8 µs for ec-elgamal; a BigInt parse for the
 * others) was repeated for every job. Public values only; bounded (cleared when full).
 */
const publicKeys = new Map<string, unknown>();
const PUBLIC_KEYS_MAX = 1024;

function publicKey<PK>(scheme: string, bytes: Uint8Array, decode: (b: Uint8Array) => PK): PK {
  const id = `${scheme}:${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')}`;
  let pk = publicKeys.get(id) as PK | undefined;
  if (pk === undefined) {
    // A copy: `bytes` may be a view into the job's packed buffer, which is wiped after use.
    pk = decode(bytes.slice());
    if (publicKeys.size >= PUBLIC_KEYS_MAX) publicKeys.clear();
    publicKeys.set(id, pk);
  }
  return pk;
}

/** Computes the encoded answer of a job; zeroes the job's secrets whatever happens. */
export function runGroupJob(job: GroupJob): Uint8Array {
  try {
    if (job.op === 'threshold') return thresholdAnswer(job);
    const s = getScheme(job.scheme);
    const pk = publicKey(job.scheme, job.pk, (b) => s.decodePublicKey(b));
    const q = s.decodeShare(pk, job.q);
    try {
      let y: Uint8Array;
      if (job.op === 'hom2') {
        if (!job.sk || !job.blinded) throw new BlindfoldError('ERR_INTERNAL', 'incomplete job');
        if (s === ecElGamal && job.aux === undefined) {
          // hom2 on ec-elgamal, the hot path: the same answer, each point decoded once.
          const sk = s.decodeSecretKey(job.sk);
          try {
            y = s.encodePlaintext(pk, answerFromEncoded(pk, sk, job.blinded, q as EcShare));
          } finally {
            zeroize(sk);
          }
        } else {
          const ct = s.decodeCiphertext(pk, job.blinded);
          const w = job.aux === undefined ? undefined : s.decodePlaintext(pk, job.aux);
          const sk = s.decodeSecretKey(job.sk);
          try {
            // homMode.answer / chainMode.answer with q derived by the caller:
            // applyShare(Dec(C'), q), never Dec alone; for a chain on ec-elgamal also q·W.
            y = s.encodePlaintext(pk, s.applyShare(pk, s.decrypt(sk, ct), q));
            if (w !== undefined) y = concat(y, s.encodePlaintext(pk, s.applyShare(pk, w, q)));
          } finally {
            if (sk instanceof Uint8Array) zeroize(sk);
          }
        }
      } else {
        if (!job.x) throw new BlindfoldError('ERR_INTERNAL', 'incomplete job');
        if (s === ecElGamal) {
          // hom2-opt on ec-elgamal, the hot path: X_A decoded once, by the multiplication.
          y = s.encodePlaintext(pk, shareOfEncoded(pk, job.x, q as EcShare));
        } else {
          const x = s.decodePlaintext(pk, job.x);
          try {
            // homMode.optAnswer with q derived by the caller: applyShare(X_A, q).
            y = s.encodePlaintext(pk, s.applyShare(pk, x, q));
          } finally {
            if (x instanceof Uint8Array) zeroize(x);
          }
        }
      }
      if (job.client === undefined) return y;
      // SPEC.md §5.8: the answer Y leaves only encrypted to the client's key U.
      return encryptToClient(decodePoint(y, 'answer'), decodePoint(job.client, 'client key'));
    } finally {
      if (q instanceof Uint8Array) zeroize(q);
    }
  } finally {
    zeroize(...[job.sk, job.x, job.q].filter((b): b is Uint8Array => b !== undefined));
  }
}

/** threshold.nodeAnswer with q derived by the caller: q·c2' ‖ (q·d_j)·c1' (SPEC.md §5.6). */
function thresholdAnswer(job: GroupJob): Uint8Array {
  if (!job.sk || !job.blinded) throw new BlindfoldError('ERR_INTERNAL', 'incomplete job');
  const pk = publicKey('ec-elgamal', job.pk, (b) => ecElGamal.decodePublicKey(b));
  const ct = ecElGamal.decodeCiphertext(pk, job.blinded);
  const q = decodeScalar(job.q, 'item share');
  const d = decodeScalar(job.sk, 'key share');
  try {
    return nodeAnswerWithShare(d, q, ct);
  } finally {
    zeroize(q, d);
  }
}

// ---------------------------------------------------------------------------------------------
// Wire format between the threads. A typed array crossing postMessage is cloned with its whole
// backing ArrayBuffer (a 32-byte view into a request body copies the body), ~20-400 µs each; so
// the jobs of one turn are packed into one fresh buffer that is transferred, not cloned:
//   job   = u32 id ‖ u8 op (0 hom2, 1 hom2-opt, 2 threshold) ‖ lp8(scheme) ‖ 7 × (u32 len ‖ bytes)
//           for pk, sk, blinded, x, q, aux, client (len 0xffffffff = absent)
//   reply = u32 id ‖ u8 ok ‖ u32 len ‖ bytes (the answer; else utf8 JSON {code, message})

const FIELDS = ['pk', 'sk', 'blinded', 'x', 'q', 'aux', 'client'] as const;
const OPS: readonly GroupOp[] = ['hom2', 'hom2-opt', 'threshold'];
const ABSENT = 0xffffffff;
const enc = new TextEncoder();
const dec = new TextDecoder();

export function packJobs(jobs: { id: number; job: GroupJob }[]): Uint8Array {
  let size = 0;
  const schemes = jobs.map(({ job }) => enc.encode(job.scheme));
  jobs.forEach(({ job }, i) => {
    size += 4 + 1 + 1 + schemes[i]!.length + FIELDS.length * 4;
    for (const f of FIELDS) size += job[f]?.length ?? 0;
  });
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  let o = 0;
  jobs.forEach(({ id, job }, i) => {
    dv.setUint32(o, id);
    out[o + 4] = OPS.indexOf(job.op);
    out[o + 5] = schemes[i]!.length;
    out.set(schemes[i]!, o + 6);
    o += 6 + schemes[i]!.length;
    for (const f of FIELDS) {
      const b = job[f];
      dv.setUint32(o, b === undefined ? ABSENT : b.length);
      o += 4;
      if (b) {
        out.set(b, o);
        o += b.length;
      }
    }
  });
  return out;
}

export function unpackJobs(buf: Uint8Array): { id: number; job: GroupJob }[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const jobs: { id: number; job: GroupJob }[] = [];
  for (let o = 0; o < buf.length; ) {
    const id = dv.getUint32(o);
    const op = OPS[buf[o + 4]!];
    if (op === undefined) throw new BlindfoldError('ERR_INTERNAL', 'unknown group operation');
    const sl = buf[o + 5]!;
    const scheme = dec.decode(buf.subarray(o + 6, o + 6 + sl));
    o += 6 + sl;
    const v: Partial<Record<(typeof FIELDS)[number], Uint8Array>> = {};
    for (const f of FIELDS) {
      const len = dv.getUint32(o);
      o += 4;
      if (len !== ABSENT) {
        v[f] = buf.subarray(o, o + len);
        o += len;
      }
    }
    jobs.push({
      id,
      job: {
        op,
        scheme,
        pk: v.pk!,
        sk: v.sk,
        blinded: v.blinded,
        x: v.x,
        q: v.q!,
        aux: v.aux,
        client: v.client,
      },
    });
  }
  return jobs;
}

export type JobReply = { id: number; y?: Uint8Array; error?: { code: string; message: string } };

export function packReplies(replies: JobReply[]): Uint8Array {
  const bodies = replies.map((r) => r.y ?? enc.encode(JSON.stringify(r.error)));
  const out = new Uint8Array(bodies.reduce((n, b) => n + 9 + b.length, 0));
  const dv = new DataView(out.buffer);
  let o = 0;
  replies.forEach((r, i) => {
    dv.setUint32(o, r.id);
    out[o + 4] = r.y ? 1 : 0;
    dv.setUint32(o + 5, bodies[i]!.length);
    out.set(bodies[i]!, o + 9);
    o += 9 + bodies[i]!.length;
  });
  return out;
}

export function unpackReplies(buf: Uint8Array): JobReply[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: JobReply[] = [];
  for (let o = 0; o < buf.length; ) {
    const id = dv.getUint32(o);
    const ok = buf[o + 4] === 1;
    const len = dv.getUint32(o + 5);
    const body = buf.subarray(o + 9, o + 9 + len);
    o += 9 + len;
    out.push(ok ? { id, y: body.slice() } : { id, error: JSON.parse(dec.decode(body)) });
  }
  return out;
}
