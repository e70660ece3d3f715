/**
 * The pure parts of the KMS API (SPEC.md §11): the canonical encoding of an encryption context,
 * the KMS ciphertext blob, and the group arithmetic of client-blinded keys (SPEC.md §5.8) on
 * every side (manager, appliance, client). No I/O: the SDK runs this in browsers.
 */
import { concat, equalBytes, lp16, readU16be, readU32be, u8, u16be, u32be, utf8 } from './bytes.ts';
import { BlindfoldError } from './errors.ts';
import {
  add,
  decodePoint,
  encodePoint,
  isIdentity,
  mul,
  mulBase,
  type Point,
  randomScalar,
  type Scalar,
  scalarInvert,
  sub,
} from './group.ts';
import { sha256 } from './hash.ts';
import { type ItemRef, itemKek } from './protocol.ts';
import type { Rng } from './random.ts';
import { systemRng } from './random.ts';

/** Limits of an encryption context (SPEC.md §11.3). */
export const CONTEXT_MAX_PAIRS = 16;
export const CONTEXT_MAX_KEY = 128;
export const CONTEXT_MAX_VALUE = 1024;

export type EncryptionContext = Record<string, string>;

function decodeErr(detail: string): BlindfoldError {
  return new BlindfoldError('ERR_DECODE', `invalid KMS ciphertext blob: ${detail}`);
}

/**
 * canonical(context) = u16(n) ‖ (lp16(utf8(key)) ‖ lp16(utf8(value))) for each pair, keys in
 * ascending order of their UTF-8 bytes. The empty context encodes as u16(0).
 */
export function encodeContext(context: EncryptionContext = {}): Uint8Array {
  const pairs = Object.entries(context).map(([k, v]) => {
    if (typeof v !== 'string') {
      throw new BlindfoldError('ERR_INVALID_ARGUMENT', `context value of "${k}" must be a string`);
    }
    if (k.length < 1 || k.length > CONTEXT_MAX_KEY || v.length > CONTEXT_MAX_VALUE) {
      throw new BlindfoldError(
        'ERR_INVALID_ARGUMENT',
        `context keys are 1..${CONTEXT_MAX_KEY} characters, values at most ${CONTEXT_MAX_VALUE}`,
      );
    }
    return [utf8(k), utf8(v)] as const;
  });
  if (pairs.length > CONTEXT_MAX_PAIRS) {
    throw new BlindfoldError(
      'ERR_INVALID_ARGUMENT',
      `an encryption context has at most ${CONTEXT_MAX_PAIRS} pairs`,
    );
  }
  pairs.sort((a, b) => compareBytes(a[0], b[0]));
  return concat(u16be(pairs.length), ...pairs.flatMap(([k, v]) => [lp16(k), lp16(v)]));
}

/** The inverse of encodeContext; refuses non-canonical encodings (order, duplicates, trailing). */
export function decodeContext(b: Uint8Array): EncryptionContext {
  const dec = new TextDecoder('utf-8', { fatal: true });
  if (b.length < 2) throw decodeErr('context too short');
  const n = readU16be(b, 0);
  let off = 2;
  const out: EncryptionContext = {};
  let prev: Uint8Array | undefined;
  const take = () => {
    if (off + 2 > b.length) throw decodeErr('context truncated');
    const len = readU16be(b, off);
    if (off + 2 + len > b.length) throw decodeErr('context truncated');
    const v = b.subarray(off + 2, off + 2 + len);
    off += 2 + len;
    return v;
  };
  for (let i = 0; i < n; i++) {
    const k = take();
    const v = take();
    if (prev && compareBytes(prev, k) >= 0) throw decodeErr('context not in canonical order');
    prev = k;
    try {
      // defineProperty: a key such as "__proto__" is an own property, never the prototype.
      Object.defineProperty(out, dec.decode(k), {
        value: dec.decode(v),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } catch {
      throw decodeErr('context is not valid UTF-8');
    }
  }
  if (off !== b.length) throw decodeErr('bytes after the context');
  if (!equalBytes(encodeContext(out), b)) throw decodeErr('context not canonical');
  return out;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** contextHash = SHA-256("blindfold/v1/kms-context" ‖ 0x00 ‖ canonical(context)). */
export function contextHash(context: EncryptionContext = {}): Uint8Array {
  return sha256(utf8('blindfold/v1/kms-context'), Uint8Array.of(0), encodeContext(context));
}

/** The item entropy of a KMS item: 16 random bytes ‖ contextHash (48 bytes, SPEC.md §11.3). */
export function kmsEntropy(nonce: Uint8Array, ctxHash: Uint8Array): Uint8Array {
  if (nonce.length !== 16 || ctxHash.length !== 32) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'KMS entropy is 16 + 32 bytes');
  }
  return concat(nonce, ctxHash);
}

// -- the KMS ciphertext blob (SPEC.md §11.4) ------------------------------------------------------

export const BLOB_MAGIC = utf8('BFK');
export const BLOB_VERSION = 0x01;
/** What a blob carries: a wrapped data key, wrapped data (Encrypt), or nothing (client-blinded). */
export const BLOB_KINDS = { 'data-key': 0x01, data: 0x02, 'client-blinded': 0x03 } as const;
export type BlobKind = keyof typeof BLOB_KINDS;
export const MAX_ENCRYPT_BYTES = 4096;
export const MAX_BLOB_BYTES = 8192;

export interface BlobFields {
  kind: BlobKind;
  scheme: number;
  mode: number;
  keyring: string;
  masterVersion: number;
  managerVersion: number;
  itemId: Uint8Array; // 16
  nonce: Uint8Array; // 16: the random half of the item entropy
  ticket: Uint8Array;
}

export interface DecodedBlob extends BlobFields {
  /** Every byte before the AEAD part: the blob's own associated data (with contextHash). */
  prefix: Uint8Array;
  /** iv ‖ ciphertext ‖ tag, empty for client-blinded blobs. */
  sealed: Uint8Array;
}

export function encodeBlobPrefix(f: BlobFields): Uint8Array {
  if (f.itemId.length !== 16 || f.nonce.length !== 16) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'item id and nonce are 16 bytes');
  }
  return concat(
    BLOB_MAGIC,
    u8(BLOB_VERSION),
    u8(BLOB_KINDS[f.kind]),
    u8(f.scheme),
    u8(f.mode),
    lp16(utf8(f.keyring)),
    u32be(f.masterVersion),
    u32be(f.managerVersion),
    f.itemId,
    f.nonce,
    lp16(f.ticket),
  );
}

export function decodeBlob(b: Uint8Array): DecodedBlob {
  if (b.length < 8 || b.length > MAX_BLOB_BYTES) throw decodeErr('wrong length');
  if (!equalBytes(b.subarray(0, 3), BLOB_MAGIC)) throw decodeErr('bad magic');
  if (b[3] !== BLOB_VERSION) {
    throw new BlindfoldError('ERR_UNSUPPORTED_VERSION', `unknown KMS blob version ${b[3]}`);
  }
  const kind = (Object.keys(BLOB_KINDS) as BlobKind[]).find((k) => BLOB_KINDS[k] === b[4]);
  if (!kind) throw decodeErr(`unknown kind ${b[4]}`);
  let off = 7;
  const need = (n: number) => {
    if (off + n > b.length) throw decodeErr('truncated');
  };
  need(2);
  const kl = readU16be(b, off);
  if (kl < 1 || kl > 64) throw decodeErr('keyring length');
  need(2 + kl);
  let keyring: string;
  try {
    keyring = new TextDecoder('utf-8', { fatal: true }).decode(b.subarray(off + 2, off + 2 + kl));
  } catch {
    throw decodeErr('keyring is not UTF-8');
  }
  if (!/^[a-z0-9._-]{1,64}$/.test(keyring)) throw decodeErr('keyring charset');
  off += 2 + kl;
  need(8 + 32 + 2);
  const masterVersion = readU32be(b, off);
  const managerVersion = readU32be(b, off + 4);
  off += 8;
  const itemId = b.slice(off, off + 16);
  const nonce = b.slice(off + 16, off + 32);
  off += 32;
  const tl = readU16be(b, off);
  need(2 + tl);
  const ticket = b.slice(off + 2, off + 2 + tl);
  off += 2 + tl;
  const prefix = b.slice(0, off);
  const sealed = b.slice(off);
  if (kind === 'client-blinded' ? sealed.length !== 0 : sealed.length < 12 + 16) {
    throw decodeErr('payload length');
  }
  return {
    kind,
    scheme: b[5]!,
    mode: b[6]!,
    keyring,
    masterVersion,
    managerVersion,
    itemId,
    nonce,
    ticket,
    prefix,
    sealed,
  };
}

/** AAD of the blob's AEAD: its prefix ‖ contextHash (the context itself is not stored). */
export function blobAad(prefix: Uint8Array, ctxHash: Uint8Array): Uint8Array {
  return concat(prefix, ctxHash);
}

/** The item a blob names, with the entropy rebuilt from the caller's context. */
export function blobItemRef(f: BlobFields, ctxHash: Uint8Array): ItemRef {
  return {
    keyring: f.keyring,
    itemId: f.itemId,
    masterVersion: f.masterVersion,
    managerVersion: f.managerVersion,
    entropy: kmsEntropy(f.nonce, ctxHash),
  };
}

// -- client-blinded keys (SPEC.md §5.8) ------------------------------------------------------------

/** The client's key pair: u secret (wipe it after use), U = u·B sent to the service. */
export function clientKeyPair(rng: Rng = systemRng): { u: Scalar; U: Uint8Array } {
  const u = randomScalar(rng);
  return { u, U: encodePoint(mulBase(u)) };
}

/** Decodes and checks a client key U (canonical ristretto255, not the identity). */
export function decodeClientKey(b: Uint8Array): Point {
  const p = decodePoint(b, 'clientKey');
  if (isIdentity(p)) throw new BlindfoldError('ERR_IDENTITY', 'clientKey is the identity');
  return p;
}

/** Manager: Enc_U(Y) = (k·B, Y + k·U) for a fresh k, instead of Y itself (64 bytes). */
export function encryptToClient(y: Point, U: Point, rng: Rng = systemRng): Uint8Array {
  const k = randomScalar(rng);
  try {
    return concat(encodePoint(mulBase(k)), encodePoint(add(y, mul(k, U))));
  } finally {
    k.fill(0);
  }
}

/**
 * Appliance: removes its blind ρ on the ciphertext, (ρ⁻¹·a1, ρ⁻¹·a2) = Enc_U(ρ⁻¹·Y), and
 * re-randomizes it under U, so that the manager cannot recognize its answer (64 bytes).
 */
export function unblindForClient(
  answer: Uint8Array,
  rho: Scalar,
  U: Point,
  rng: Rng = systemRng,
): Uint8Array {
  if (answer.length !== 64) {
    throw new BlindfoldError('ERR_DECODE', 'a client-blinded answer is 64 bytes');
  }
  const a1 = decodePoint(answer.subarray(0, 32), 'answer a1');
  const a2 = decodePoint(answer.subarray(32), 'answer a2');
  const inv = scalarInvert(rho);
  const r = randomScalar(rng);
  try {
    return concat(
      encodePoint(add(mul(inv, a1), mulBase(r))),
      encodePoint(add(mul(inv, a2), mul(r, U))),
    );
  } finally {
    inv.fill(0);
    r.fill(0);
  }
}

/** Client: S_i = c2 − u·c1, then KEK_i (SPEC.md §4.3); S_i is wiped, the KEK returned. */
export function clientKeyFromCiphertext(ct: Uint8Array, u: Scalar, ref: ItemRef): Uint8Array {
  if (ct.length !== 64) throw new BlindfoldError('ERR_DECODE', 'clientCiphertext is 64 bytes');
  const c1 = decodePoint(ct.subarray(0, 32), 'clientCiphertext c1');
  const c2 = decodePoint(ct.subarray(32), 'clientCiphertext c2');
  const s = sub(c2, mul(u, c1));
  const secret = encodePoint(s);
  try {
    return itemKek(secret, ref);
  } finally {
    secret.fill(0);
    s.fill(0);
  }
}
