/**
 * The generator of Blindfold's own test vectors (SPEC.md §1.4): `npm run vectors` writes
 * test/vectors/*.json, and test/vectors.test.ts checks them in both directions.
 *
 * Every value is computed by the code in src/ on `seededRng` streams (SPEC.md §2.5). Each file has
 * its own fixed stream, seed = SHA-256("blindfold/v1/vectors/<file name>"); each case draws its own
 * 32-byte seeds from it and records them (`rngSeed`, `seed`), so that a case can be replayed alone.
 * Integer-scheme keys come from per-key streams, seed = SHA-256("blindfold/v1/vectors/key/<scheme>/
 * <i>"), with the pure-BigInt prime generator of src/core/bigint.ts: the same keys in every file
 * that uses them, and a rerun writes byte-identical files.
 *
 * Conventions of the JSON: byte strings are lowercase hex; wire messages (SPEC.md §5) are the JSON
 * objects as sent, with their base64url fields; integers are JSON numbers. A byte field may also be
 * `{ "ref": case, "field": f }` (the field of another valid case of the same file) or
 * `{ "concat": [ {ref, field, start?, end?} | {hex} ... ] }` (pieces of other fields), so that the
 * 64 KiB ciphertexts of GM and the multi-chunk files are written once and mutated by reference; such
 * inputs carry `inputSha256` to check their reconstruction. An output written as `<field>Sha256`
 * holds the SHA-256 of the bytes instead of the bytes (only for GM ciphertexts and large files).
 *
 * Not deterministic, and therefore not vectors of the code path itself: `Sealer.seal` draws its
 * nonce from node:crypto, so seal.json builds sealed blobs by the formula of SPEC.md §9 with seeded
 * nonces and checks them through `Sealer.open`; the manager's ECDSA key statement signatures
 * (OpenSSL, random k) are replaced by deterministic RFC 6979 signatures (@noble/curves), which the
 * appliance's verifier (node:crypto) accepts alike.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { p256 } from '@noble/curves/nist.js';
import { encryptStream, nodeAesGcm, rewrapHeader } from '../../src/appliance/stream.ts';
import { type ChainFields, canonicalEntry, chainHash, GENESIS_HASH } from '../../src/core/audit.ts';
import {
  bitLength,
  byteLength,
  isPerfectSquare,
  isProbablePrime,
  jacobi,
  randomBelow,
  randomUnit,
} from '../../src/core/bigint.ts';
import {
  bigToBytes,
  concat,
  lp16,
  toB64u,
  toHex,
  u8,
  u16be,
  u32be,
  u64be,
  utf8,
} from '../../src/core/bytes.ts';
import {
  CHUNK_SIZE,
  chunkNonce,
  type HeaderFields,
  payloadKey,
  SEALED_CHUNK_SIZE,
  sealHeader,
} from '../../src/core/format.ts';
import { L, randomPoint, randomScalar } from '../../src/core/group.ts';
import { expandMessageXmd, hashToGroup, hashToScalar } from '../../src/core/h2c.ts';
import { deriveKey, hmacSha256, sha256 } from '../../src/core/hash.ts';
import { SPLIT_P, type SplitOperatorId, splitOperators } from '../../src/core/operators.ts';
import {
  homMode,
  type ItemRef,
  itemContext,
  itemKek,
  MODE_CODES,
  type Mode,
  shareSeed,
  splitMode,
} from '../../src/core/protocol.ts';
import { type Rng, seededRng } from '../../src/core/random.ts';
import { schemes } from '../../src/core/schemes/index.ts';
import { SCHEME_CODES, type SchemeId } from '../../src/core/schemes/scheme.ts';
import { issueTicket } from '../../src/core/ticket.ts';
import { keyStatement, ticketBinding } from '../../src/manager/manager.ts';
import { rootKeyId, splitRootKey } from '../../src/manager/seal.ts';
import { modeThresholdFile } from './threshold.ts';

// biome-ignore lint/suspicious/noExplicitAny: the generator is generic over schemes of any types
type Any = any;
export type Case = Record<string, unknown>;

export interface VectorFile {
  description: string;
  spec: string;
  /** SHA-256("blindfold/v1/vectors/<file>"): the seed of the file's stream. */
  seed: string;
  notes?: string[];
  valid: Case[];
  invalid: Case[];
}

const hex = toHex;
const EMPTY = new Uint8Array(0);
/** 2026-01-01T00:00:00Z: the fixed "now" of every vector that needs a clock. */
export const NOW_MS = 1767225600000;
/** Split-operator codes of SPEC.md §2.2 (the header's scheme byte in split mode). */
export const SPLIT_CODES: Record<SplitOperatorId, number> = {
  xor: 0x11,
  'add-p': 0x12,
  'mul-p': 0x13,
};
/** DER prefix of a P-256 SubjectPublicKeyInfo with an uncompressed point (RFC 5480). */
const P256_SPKI_PREFIX = Uint8Array.from(
  Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex'),
);

export function fileSeed(name: string): Uint8Array {
  return sha256(utf8(`blindfold/v1/vectors/${name}`));
}

/** The file's seeded stream: every case seed and every value the file invents comes from it. */
class Stream {
  readonly #rng: Rng;
  constructor(name: string) {
    this.#rng = seededRng(fileSeed(name));
  }
  seed(): Uint8Array {
    return this.#rng(32);
  }
  bytes(n: number): Uint8Array {
    return this.#rng(n);
  }
}

function refTo(name: string, field: string): Case {
  return { ref: name, field };
}

interface Piece {
  ref?: string;
  field?: string;
  start?: number;
  end?: number;
  hex?: string;
}

/**
 * A byte input built from pieces of other cases' fields (for inputs too big to repeat). `lookup`
 * supplies fields that the file gives only by digest (the large files of file.json).
 */
function pieces(
  all: Case[],
  parts: Piece[],
  lookup?: (ref: string, field: string) => Uint8Array | undefined,
): { input: Case; inputSha256: string } {
  const bytes: Uint8Array[] = [];
  for (const p of parts) {
    if (p.hex !== undefined) {
      bytes.push(Uint8Array.from(Buffer.from(p.hex, 'hex')));
      continue;
    }
    let b = lookup?.(p.ref!, p.field!);
    if (!b) {
      const v = all.find((x) => x.name === p.ref)?.[p.field!];
      if (typeof v !== 'string') throw new Error(`generator: no hex field ${p.ref}.${p.field}`);
      b = Uint8Array.from(Buffer.from(v, 'hex'));
    }
    bytes.push(b.subarray(p.start ?? 0, p.end ?? b.length));
  }
  return { input: { concat: parts as Case[] }, inputSha256: hex(sha256(concat(...bytes))) };
}

// ---------------------------------------------------------------------------------------------
// Keys shared by several files

interface SchemeKey {
  rngSeed: Uint8Array;
  pk: Any;
  sk: Any;
}

const keyCache = new Map<string, SchemeKey>();

/** Key pair i of a scheme, from its own seeded stream (same in every file; memoized). */
export function schemeKey(id: SchemeId, i: number): SchemeKey {
  const k = `${id}/${i}`;
  const hit = keyCache.get(k);
  if (hit) return hit;
  const rngSeed = sha256(utf8(`blindfold/v1/vectors/key/${k}`));
  const s: Any = schemes[id];
  const kp =
    id === 'ec-elgamal'
      ? s.generateKeyPair({ rng: seededRng(rngSeed) })
      : s.generateKeyPair({ bits: 2048, rng: seededRng(rngSeed) });
  const out = { rngSeed, pk: kp.publicKey, sk: kp.secretKey };
  keyCache.set(k, out);
  return out;
}

function keyCase(id: SchemeId, name: string, k: SchemeKey): Case {
  const s: Any = schemes[id];
  return {
    name,
    op: 'generateKeyPair',
    ...(id === 'ec-elgamal' ? {} : { bits: 2048 }),
    rngSeed: hex(k.rngSeed),
    publicKey: hex(s.encodePublicKey(k.pk)),
    secretKey: hex(s.encodeSecretKey(k.sk)),
    fingerprint: hex(s.fingerprint(k.pk)),
  };
}

/** The blinding state β as bytes: ec-elgamal ρ (scalar), paillier/rsa Z (|n| bytes), gm Z. */
export function encodeBlind(id: SchemeId, pk: Any, b: Any): Uint8Array {
  if (id === 'ec-elgamal' || id === 'gm') return (b as Uint8Array).slice();
  return bigToBytes(b.z, pk.nBytes);
}

/** A secret-sized value independent of the key: points and GM strings as encoded, integers in 32 bytes. */
export function keyFreeValue(
  id: SchemeId,
  pk: Any,
  x: Any,
  kind: 'plaintext' | 'share',
): Uint8Array {
  const s: Any = schemes[id];
  if (id === 'paillier' || id === 'rsa') return bigToBytes(x, 32);
  return kind === 'plaintext' ? s.encodePlaintext(pk, x) : s.encodeShare(pk, x);
}

// ---------------------------------------------------------------------------------------------
// derive.json (SPEC.md §2.1, §2.3, §2.5)

function deriveFile(): VectorFile {
  const name = 'derive.json';
  const g = new Stream(name);
  const valid: Case[] = [];
  const invalid: Case[] = [];

  const dk = (
    n: string,
    ikm: Uint8Array,
    label: string,
    ctx: Uint8Array,
    len: number,
    salt: Uint8Array,
  ) =>
    valid.push({
      name: n,
      op: 'deriveKey',
      ikm: hex(ikm),
      label,
      context: hex(ctx),
      length: len,
      salt: hex(salt),
      output: hex(deriveKey(ikm, label, ctx, len, salt)),
    });
  dk('item-kek, empty context', g.seed(), 'item-kek', EMPTY, 32, EMPTY);
  dk('item-kek with a 40-byte context', g.seed(), 'item-kek', g.bytes(40), 32, EMPTY);
  dk('payload key, salt = 16-byte fileNonce', g.seed(), 'payload', EMPTY, 32, g.bytes(16));
  dk('seal-key-id, L = 8', g.seed(), 'seal-key-id', EMPTY, 8, EMPTY);
  dk(
    'seed expansion retry context u8(1), L = 64',
    g.seed(),
    'scheme/ec-elgamal/plaintext',
    u8(1),
    64,
    EMPTY,
  );
  dk('L = 1', g.seed(), 'seal', EMPTY, 1, EMPTY);
  dk('L = 100 (four HMAC blocks)', g.seed(), 'split/add-p/element', EMPTY, 100, EMPTY);
  dk('L = 8160 (the maximum, 255 blocks)', g.seed(), 'item-kek', EMPTY, 8160, EMPTY);
  dk('64-byte ikm (paillier/rsa secretBytes)', g.bytes(64), 'item-kek', g.bytes(30), 32, EMPTY);

  for (const [n, seed] of [
    ['seededRng, zero seed', new Uint8Array(32)],
    ['seededRng, random seed', g.seed()],
  ] as const) {
    const reads = [32, 1, 31, 64, 100, 0, 7];
    const rng = seededRng(seed);
    valid.push({
      name: n,
      op: 'seededRng',
      seed: hex(seed),
      reads,
      outputs: reads.map((r) => hex(rng(r))),
    });
  }

  const xmd = (n: string, msg: Uint8Array, dst: string, len: number) =>
    valid.push({
      name: n,
      op: 'expandMessageXmd',
      msg: hex(msg),
      dst,
      length: len,
      output: hex(expandMessageXmd(msg, dst, len)),
    });
  xmd('empty message, L = 32', EMPTY, 'blindfold/v1/dleq', 32);
  xmd('"abc", L = 64', utf8('abc'), 'blindfold/v1/dleq', 64);
  xmd('65-byte message, L = 65 (two blocks)', g.bytes(65), 'blindfold/v1/test', 65);
  xmd('L = 16320 (the maximum, 255 blocks)', g.bytes(16), 'blindfold/v1/test', 255 * 64);
  xmd('255-byte DST', utf8('x'), `blindfold/v1/${'d'.repeat(242)}`, 32);
  for (const [n, msg] of [
    ['empty', EMPTY],
    ['"abc"', utf8('abc')],
    ['random 48 bytes', g.bytes(48)],
  ] as const) {
    valid.push({
      name: `hashToGroup ${n}`,
      op: 'hashToGroup',
      msg: hex(msg),
      dst: 'blindfold/v1/dleq',
      output: hex(hashToGroup(msg, 'blindfold/v1/dleq')),
    });
    valid.push({
      name: `hashToScalar ${n}`,
      op: 'hashToScalar',
      msg: hex(msg),
      dst: 'blindfold/v1/dleq',
      output: hex(hashToScalar(msg, 'blindfold/v1/dleq')),
    });
  }

  // Sampling algorithms (SPEC.md §2.5): how a stream is consumed.
  for (let i = 0; i < 2; i++) {
    const s1 = g.seed();
    valid.push({
      name: `randomScalar ${i + 1}`,
      op: 'randomScalar',
      rngSeed: hex(s1),
      output: hex(randomScalar(seededRng(s1))),
    });
    const s2 = g.seed();
    valid.push({
      name: `randomPoint ${i + 1}`,
      op: 'randomPoint',
      rngSeed: hex(s2),
      output: hex(randomPoint(seededRng(s2))),
    });
  }
  const moduli: [string, bigint][] = [
    ['p = 2^256 − 189', SPLIT_P],
    ['ℓ', L],
    ['2^2047 + 2^1000 + 1 (odd, 2048 bits)', (1n << 2047n) + (1n << 1000n) + 1n],
    ['2^255 (a power of two: top byte masked)', 1n << 255n],
    ['3 · 5 · 7 (small, with rejections)', 105n],
  ];
  for (const [n, m] of moduli) {
    const len = byteLength(m);
    const s1 = g.seed();
    const rng = seededRng(s1);
    const outs = [0, 1, 2].map(() => hex(bigToBytes(randomBelow(m, rng), len)));
    valid.push({
      name: `randomBelow ${n}`,
      op: 'randomBelow',
      n: hex(bigToBytes(m, len)),
      rngSeed: hex(s1),
      outputs: outs,
    });
    const s2 = g.seed();
    const rng2 = seededRng(s2);
    const units = [0, 1, 2].map(() => hex(bigToBytes(randomUnit(m, rng2), len)));
    valid.push({
      name: `randomUnit ${n}`,
      op: 'randomUnit',
      n: hex(bigToBytes(m, len)),
      rngSeed: hex(s2),
      outputs: units,
    });
  }

  // base64url (SPEC.md §2.1): strict, no padding.
  for (const len of [0, 1, 2, 3, 4, 5, 32]) {
    const b = g.bytes(len);
    valid.push({ name: `base64url ${len} bytes`, op: 'base64url', bytes: hex(b), text: toB64u(b) });
  }
  valid.push({
    name: 'base64url of fb ff (uses - and _)',
    op: 'base64url',
    bytes: 'fbff',
    text: '-_8',
  });

  const b64 = (n: string, text: string) =>
    invalid.push({ name: n, op: 'fromB64u', text, error: 'ERR_DECODE' });
  b64('padding "="', 'AA==');
  b64('padding "=" at length 3', 'AA=');
  b64('length ≡ 1 (mod 4)', 'AAAAA');
  b64('nonzero unused trailing bits (2 chars)', 'AB');
  b64('nonzero unused trailing bits (3 chars)', 'AAB');
  b64('standard alphabet "+"', 'a+b_');
  b64('standard alphabet "/"', 'a/b_');
  b64('whitespace', 'AA A');
  b64('non-ASCII character', 'AAé');

  const xmdBad = (n: string, msg: Uint8Array, dst: string, len: number) =>
    invalid.push({
      name: n,
      op: 'expandMessageXmd',
      msg: hex(msg),
      dst,
      length: len,
      error: 'ERR_INVALID_ARGUMENT',
    });
  xmdBad('empty DST', utf8('abc'), '', 32);
  xmdBad('256-byte DST', utf8('abc'), 'd'.repeat(256), 32);
  xmdBad('L = 0', utf8('abc'), 'blindfold/v1/dleq', 0);
  xmdBad('L = 16321', utf8('abc'), 'blindfold/v1/dleq', 255 * 64 + 1);

  // SPEC.md §2.3: 1 ≤ L ≤ 8160; §2.4: a value of the wrong range is ERR_INVALID_ARGUMENT.
  const dkBad = (n: string, len: number) =>
    invalid.push({
      name: n,
      op: 'deriveKey',
      ikm: hex(new Uint8Array(32)),
      label: 'item-kek',
      context: '',
      length: len,
      salt: '',
      error: 'ERR_INVALID_ARGUMENT',
    });
  dkBad('deriveKey L = 0', 0);
  dkBad('deriveKey L = 8161', 8161);

  return {
    description:
      'Primitives: deriveKey (HKDF-SHA256 with Blindfold labels), the seededRng stream, the sampling algorithms, expand_message_xmd (SHA-512), hashToGroup, hashToScalar, and strict base64url.',
    spec: 'SPEC.md §2.1, §2.3, §2.5',
    seed: hex(fileSeed(name)),
    valid,
    invalid,
  };
}

// ---------------------------------------------------------------------------------------------
// scheme-*.json (SPEC.md §3)

const RFC9496_BAD = {
  'non-canonical field encoding (s ≥ p)':
    'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'non-canonical: top bit set': '00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
  'negative field element': '0100000000000000000000000000000000000000000000000000000000000000',
  'non-square x²': '26948d35ca62e643e26a83177332e6b6afeb9d08e4268b650f1f5bbd8d81d371',
  'negative xy value': '3eb858e78f5a7254d8c9731174a94f76755fd3941c0ac93735c07ba14579630e',
};

function fixed(x: bigint, len: number): string {
  return hex(bigToBytes(x, len));
}

function modulusBytes(n: bigint): Uint8Array {
  const len = byteLength(n);
  return concat(u16be(len), bigToBytes(n, len));
}

/** The smallest odd multiple of f near n with the same bit length, not a square. */
function withFactor(n: bigint, f: bigint): bigint {
  let m = (n / f) | 1n;
  while (isPerfectSquare(m * f)) m += 2n;
  const x = m * f;
  if (bitLength(x) !== bitLength(n)) throw new Error('generator: bad small-factor modulus');
  return x;
}

/** A 1024-bit prime p ≡ 1 (mod 2·65537) with its two top bits set: gcd(65537, p − 1) ≠ 1. */
function primeWithE(rng: Rng): bigint {
  const step = 2n * 65537n;
  for (;;) {
    const lo = (3n << 1022n) / step + 1n;
    const hi = (1n << 1024n) / step;
    const k = lo + randomBelow(hi - lo, rng);
    const p = k * step + 1n;
    if (p >> 1022n === 3n && isProbablePrime(p, 50, rng)) return p;
  }
}

function schemeFile(id: SchemeId): VectorFile {
  const name = `scheme-${id}.json`;
  const g = new Stream(name);
  const s: Any = schemes[id];
  const big = id === 'gm';
  const int = id !== 'ec-elgamal';
  const valid: Case[] = [];
  const invalid: Case[] = [];
  const k1 = schemeKey(id, 1);
  const k2 = schemeKey(id, 2);
  const { pk, sk } = k1;
  valid.push(keyCase(id, 'key-1', k1), keyCase(id, 'key-2', k2));

  const ct = (c: Any): Uint8Array => s.encodeCiphertext(pk, c);
  const pt = (m: Any): string => hex(s.encodePlaintext(pk, m));
  /** GM ciphertexts are 64 KiB: outputs that no other case reads are written as digests. */
  const ctOut = (field: string, c: Any): Case =>
    big ? { [`${field}Sha256`]: hex(sha256(ct(c))) } : { [field]: hex(ct(c)) };
  const key = { key: 'key-1' };

  const masterSeed = g.seed();
  const M = s.plaintextFromSeed(pk, masterSeed);
  valid.push({
    name: 'master',
    op: 'plaintextFromSeed',
    ...key,
    seed: hex(masterSeed),
    plaintext: pt(M),
  });
  const m2Seed = g.seed();
  const m2 = s.randomPlaintext(pk, seededRng(m2Seed));
  valid.push({
    name: 'm2',
    op: 'randomPlaintext',
    ...key,
    rngSeed: hex(m2Seed),
    plaintext: pt(m2),
  });
  const qSeed = g.seed();
  const Q = s.shareFromSeed(pk, qSeed);
  valid.push({
    name: 'share',
    op: 'shareFromSeed',
    ...key,
    seed: hex(qSeed),
    share: hex(s.encodeShare(pk, Q)),
  });
  const rqSeed = g.seed();
  valid.push({
    name: 'random share',
    op: 'randomShare',
    ...key,
    rngSeed: hex(rqSeed),
    share: hex(s.encodeShare(pk, s.randomShare(pk, seededRng(rqSeed)))),
  });

  const e1 = g.seed();
  const c1 = s.encrypt(pk, M, seededRng(e1));
  valid.push({
    name: 'enc-1',
    op: 'encrypt',
    ...key,
    plaintext: pt(M),
    rngSeed: hex(e1),
    ciphertext: hex(ct(c1)),
  });
  const e2 = g.seed();
  const c2 = s.encrypt(pk, m2, seededRng(e2));
  valid.push({
    name: 'enc-2',
    op: 'encrypt',
    ...key,
    plaintext: pt(m2),
    rngSeed: hex(e2),
    ciphertext: hex(ct(c2)),
  });

  valid.push({
    name: 'combine',
    op: 'combine',
    ...key,
    a: refTo('enc-1', 'ciphertext'),
    b: refTo('enc-2', 'ciphertext'),
    ...ctOut('ciphertext', s.combine(pk, c1, c2)),
    plaintext: pt(s.op(pk, M, m2)),
  });
  valid.push({
    name: 'uncombine',
    op: 'uncombine',
    ...key,
    a: refTo('enc-1', 'ciphertext'),
    b: refTo('enc-2', 'ciphertext'),
    ...ctOut('ciphertext', s.uncombine(pk, c1, c2)),
    plaintext: pt(s.op(pk, M, s.inv(pk, m2))),
  });
  valid.push({
    name: 'combinePlain',
    op: 'combinePlain',
    ...key,
    ciphertext: refTo('enc-1', 'ciphertext'),
    b: pt(m2),
    ...ctOut('result', s.combinePlain(pk, c1, m2)),
    plaintext: pt(s.op(pk, M, m2)),
  });
  const rr = g.seed();
  valid.push({
    name: 'rerandomize',
    op: 'rerandomize',
    ...key,
    ciphertext: refTo('enc-1', 'ciphertext'),
    rngSeed: hex(rr),
    ...ctOut('result', s.rerandomize(pk, c1, seededRng(rr))),
  });
  const su = g.seed();
  const cu = s.sampleUnknown(pk, seededRng(su));
  valid.push({
    name: 'sampleUnknown',
    op: 'sampleUnknown',
    ...key,
    rngSeed: hex(su),
    ...ctOut('ciphertext', cu),
    plaintext: pt(s.decrypt(sk, cu)),
  });

  valid.push({ name: 'op', op: 'op', ...key, a: pt(M), b: pt(m2), result: pt(s.op(pk, M, m2)) });
  valid.push({ name: 'inv', op: 'inv', ...key, a: pt(m2), result: pt(s.inv(pk, m2)) });
  if (id !== 'ec-elgamal')
    valid.push({ name: 'identity', op: 'identity', ...key, plaintext: pt(s.identity(pk)) });

  const S = s.applyShare(pk, M, Q);
  valid.push({
    name: 'applyShare',
    op: 'applyShare',
    ...key,
    plaintext: pt(M),
    share: hex(s.encodeShare(pk, Q)),
    result: pt(S),
  });
  const bs = g.seed();
  const b = s.blind(pk, c1, seededRng(bs));
  const xBlinded = s.decrypt(sk, b.ciphertext);
  valid.push({
    name: 'blind',
    op: 'blind',
    ...key,
    ciphertext: refTo('enc-1', 'ciphertext'),
    rngSeed: hex(bs),
    ...ctOut('blinded', b.ciphertext),
    blind: hex(encodeBlind(id, pk, b.blind)),
    blindedPlaintext: pt(xBlinded),
  });
  const y = s.applyShare(pk, xBlinded, Q);
  valid.push({
    name: 'unblind',
    op: 'unblind',
    ...key,
    blind: hex(encodeBlind(id, pk, b.blind)),
    y: pt(y),
    result: pt(s.unblind(pk, b.blind, y)),
  });
  valid.push({
    name: 'secretBytes',
    op: 'secretBytes',
    keys: ['key-1', 'key-2'],
    plaintext: pt(S),
    secretBytes: hex(s.secretBytes(pk, S)),
  });

  // ---- malformed inputs
  const bad = (n: string, op: string, input: string | Case, error: string, extra: Case = {}) =>
    invalid.push({
      name: n,
      op,
      ...(op === 'decodePublicKey' || op === 'decodeSecretKey' ? {} : key),
      ...extra,
      input,
      error,
    });
  const seedOps = () => {
    bad(
      'plaintextFromSeed: 31-byte seed',
      'plaintextFromSeed',
      hex(g.bytes(31)),
      'ERR_INVALID_ARGUMENT',
    );
    bad('shareFromSeed: 33-byte seed', 'shareFromSeed', hex(g.bytes(33)), 'ERR_INVALID_ARGUMENT');
  };

  if (id === 'ec-elgamal') {
    const P = hex(s.encodePublicKey(pk));
    const zero = '00'.repeat(32);
    const cth = hex(ct(c1));
    bad('public key: 31 bytes', 'decodePublicKey', P.slice(0, 62), 'ERR_DECODE');
    bad('public key: 33 bytes', 'decodePublicKey', `${P}00`, 'ERR_DECODE');
    bad('public key: the identity', 'decodePublicKey', zero, 'ERR_IDENTITY');
    for (const [n, v] of Object.entries(RFC9496_BAD))
      bad(`public key: ${n} (RFC 9496 A.2)`, 'decodePublicKey', v, 'ERR_DECODE');
    bad('secret key: zero', 'decodeSecretKey', zero, 'ERR_IDENTITY');
    bad('secret key: ℓ', 'decodeSecretKey', hex(bigToBytes(L, 32).reverse()), 'ERR_DECODE');
    bad(
      'secret key: ℓ + 1',
      'decodeSecretKey',
      hex(bigToBytes(L + 1n, 32).reverse()),
      'ERR_DECODE',
    );
    bad('secret key: 2^256 − 1', 'decodeSecretKey', 'ff'.repeat(32), 'ERR_DECODE');
    bad('secret key: 31 bytes', 'decodeSecretKey', '01'.repeat(31), 'ERR_DECODE');
    bad('ciphertext: 63 bytes', 'decodeCiphertext', cth.slice(0, 126), 'ERR_DECODE');
    bad('ciphertext: 65 bytes', 'decodeCiphertext', `${cth}00`, 'ERR_DECODE');
    bad('ciphertext: c1 the identity', 'decodeCiphertext', zero + cth.slice(64), 'ERR_IDENTITY');
    bad('ciphertext: c2 the identity', 'decodeCiphertext', cth.slice(0, 64) + zero, 'ERR_IDENTITY');
    bad(
      'ciphertext: c1 non-canonical',
      'decodeCiphertext',
      RFC9496_BAD['non-canonical field encoding (s ≥ p)'] + cth.slice(64),
      'ERR_DECODE',
    );
    bad(
      'ciphertext: c2 negative field element',
      'decodeCiphertext',
      cth.slice(0, 64) + RFC9496_BAD['negative field element'],
      'ERR_DECODE',
    );
    bad('plaintext: the identity', 'decodePlaintext', zero, 'ERR_IDENTITY');
    bad('plaintext: non-square x²', 'decodePlaintext', RFC9496_BAD['non-square x²'], 'ERR_DECODE');
    bad('plaintext: empty', 'decodePlaintext', '', 'ERR_DECODE');
    bad('share: zero (the neutral share)', 'decodeShare', zero, 'ERR_IDENTITY');
    bad('share: ℓ', 'decodeShare', hex(bigToBytes(L, 32).reverse()), 'ERR_DECODE');
    bad('share: 33 bytes', 'decodeShare', `01${zero}`, 'ERR_DECODE');
    seedOps();
  } else {
    const n: bigint = pk.n;
    const nBytes: number = pk.nBytes;
    const p: bigint = sk.p;
    const q: bigint = sk.q;
    const n2Bytes = byteLength(n * n);
    const suffix = (m: bigint): Uint8Array =>
      id === 'rsa' ? u32be(65537) : id === 'gm' ? bigToBytes(2n, byteLength(m)) : EMPTY;
    const pkOf = (m: bigint) => hex(concat(modulusBytes(m), suffix(m)));
    const P = hex(s.encodePublicKey(pk));
    const mod = (m: string, v: bigint, error = 'ERR_PARAMS') =>
      bad(`public key: ${m}`, 'decodePublicKey', pkOf(v), error);
    bad('public key: empty', 'decodePublicKey', '', 'ERR_DECODE');
    bad('public key: one byte', 'decodePublicKey', '01', 'ERR_DECODE');
    bad('public key: modulus length 0', 'decodePublicKey', `0000${hex(suffix(n))}`, 'ERR_DECODE');
    bad(
      'public key: modulus length beyond the data',
      'decodePublicKey',
      hex(concat(u16be(nBytes + 1), bigToBytes(n, nBytes))),
      'ERR_DECODE',
    );
    bad(
      'public key: leading zero byte',
      'decodePublicKey',
      hex(concat(u16be(nBytes + 1), u8(0), bigToBytes(n, nBytes), suffix(n))),
      'ERR_DECODE',
    );
    bad('public key: trailing byte', 'decodePublicKey', `${P}00`, 'ERR_DECODE');
    mod('1024-bit modulus', (n >> 1024n) | 1n);
    mod('2047-bit modulus', (n >> 1n) | 1n);
    mod('8194-bit modulus', (1n << 8193n) | n | 1n);
    mod('even modulus', n + 1n);
    mod('perfect square p²', p * p);
    mod('modulus with the factor 3', withFactor(n, 3n));
    mod('modulus with the factor 65521', withFactor(n, 65521n));
    if (id === 'rsa') {
      bad(
        'public key: e = 3',
        'decodePublicKey',
        hex(concat(modulusBytes(n), u32be(3))),
        'ERR_PARAMS',
      );
      bad('public key: e missing', 'decodePublicKey', hex(modulusBytes(n)), 'ERR_DECODE');
      bad(
        'public key: e in 3 bytes',
        'decodePublicKey',
        hex(concat(modulusBytes(n), Uint8Array.of(1, 0, 1))),
        'ERR_DECODE',
      );
    }
    if (id === 'gm') {
      let v = 2n;
      while (jacobi(v, n) !== -1) v++;
      const withY = (yv: bigint, len = nBytes) => hex(concat(modulusBytes(n), bigToBytes(yv, len)));
      bad('public key: y = 0', 'decodePublicKey', withY(0n), 'ERR_DECODE');
      bad('public key: y = n', 'decodePublicKey', withY(n), 'ERR_DECODE');
      bad('public key: y one byte short', 'decodePublicKey', withY(pk.y, nBytes - 1), 'ERR_DECODE');
      bad(`public key: y = ${v}, Jacobi symbol −1`, 'decodePublicKey', withY(v), 'ERR_PARAMS');
      bad('public key: y = 4, a square', 'decodePublicKey', withY(4n), 'ERR_PARAMS');
      bad('public key: y = p, Jacobi symbol 0', 'decodePublicKey', withY(p), 'ERR_PARAMS');
    }
    const lp = (x: bigint, len = byteLength(x)) => lp16(bigToBytes(x, len));
    const SK = hex(s.encodeSecretKey(sk));
    bad('secret key: truncated', 'decodeSecretKey', SK.slice(0, -2), 'ERR_DECODE');
    bad('secret key: trailing byte', 'decodeSecretKey', `${SK}00`, 'ERR_DECODE');
    bad(
      'secret key: leading zero byte in p',
      'decodeSecretKey',
      hex(concat(lp(p, byteLength(p) + 1), lp(q))),
      'ERR_DECODE',
    );
    bad('secret key: q of length 0', 'decodeSecretKey', hex(concat(lp(p), u16be(0))), 'ERR_DECODE');
    // SPEC.md §3.3: p > q is the canonical order; the other order is a non-canonical encoding.
    bad(
      'secret key: p < q (not in canonical order)',
      'decodeSecretKey',
      hex(concat(lp(q), lp(p))),
      'ERR_DECODE',
    );
    bad('secret key: p = q', 'decodeSecretKey', hex(concat(lp(p), lp(p))), 'ERR_PARAMS');
    bad('secret key: p even', 'decodeSecretKey', hex(concat(lp(p + 1n), lp(q))), 'ERR_PARAMS');
    bad(
      'secret key: factors of different bit lengths',
      'decodeSecretKey',
      hex(concat(lp(p), lp((q >> 1n) | 1n))),
      'ERR_PARAMS',
    );
    bad(
      'secret key: 16-bit modulus (251 · 241)',
      'decodeSecretKey',
      hex(concat(lp(251n), lp(241n))),
      'ERR_PARAMS',
    );
    if (id === 'rsa') {
      const pe = primeWithE(seededRng(g.seed()));
      const [a, c] = pe > q ? [pe, q] : [q, pe];
      bad(
        'secret key: 65537 divides p − 1 (e not invertible mod λ)',
        'decodeSecretKey',
        hex(concat(lp(a), lp(c))),
        'ERR_PARAMS',
      );
    }

    const ctLen = id === 'paillier' ? n2Bytes : id === 'rsa' ? nBytes : 256 * nBytes;
    if (id !== 'gm') {
      const C = hex(ct(c1));
      bad('ciphertext: one byte short', 'decodeCiphertext', C.slice(2), 'ERR_DECODE');
      bad('ciphertext: one byte long', 'decodeCiphertext', `00${C}`, 'ERR_DECODE');
      bad('ciphertext: zero', 'decodeCiphertext', fixed(0n, ctLen), 'ERR_DECODE');
      const top = id === 'paillier' ? n * n : n;
      bad(
        `ciphertext: ${id === 'paillier' ? 'n²' : 'n'}`,
        'decodeCiphertext',
        fixed(top, ctLen),
        'ERR_DECODE',
      );
      bad('ciphertext: all ff', 'decodeCiphertext', 'ff'.repeat(ctLen), 'ERR_DECODE');
      bad('ciphertext: p (not a unit)', 'decodeCiphertext', fixed(p, ctLen), 'ERR_DECODE');
      bad('ciphertext: 2q (not a unit)', 'decodeCiphertext', fixed(2n * q, ctLen), 'ERR_DECODE');
      bad('decrypt without decoding: p (not a unit)', 'decrypt', fixed(p, ctLen), 'ERR_DECRYPT');
      bad(
        'decrypt without decoding: 3q (not a unit)',
        'decrypt',
        fixed(3n * q, ctLen),
        'ERR_DECRYPT',
      );
    } else {
      const total = ctLen;
      const elt = (i: number, v: bigint) =>
        pieces(valid, [
          { ref: 'enc-1', field: 'ciphertext', start: 0, end: i * nBytes },
          { hex: fixed(v, nBytes) },
          { ref: 'enc-1', field: 'ciphertext', start: (i + 1) * nBytes, end: total },
        ]);
      const badBig = (
        n0: string,
        op: string,
        x: { input: Case; inputSha256: string },
        error: string,
      ) =>
        invalid.push({ name: n0, op, ...key, input: x.input, inputSha256: x.inputSha256, error });
      let v = 2n;
      while (jacobi(v, n) !== -1) v++;
      badBig(
        'ciphertext: one byte short',
        'decodeCiphertext',
        pieces(valid, [{ ref: 'enc-1', field: 'ciphertext', start: 0, end: total - 1 }]),
        'ERR_DECODE',
      );
      badBig(
        'ciphertext: one byte long',
        'decodeCiphertext',
        pieces(valid, [{ ref: 'enc-1', field: 'ciphertext' }, { hex: '00' }]),
        'ERR_DECODE',
      );
      badBig('ciphertext: element 0 is zero', 'decodeCiphertext', elt(0, 0n), 'ERR_DECODE');
      badBig('ciphertext: element 255 is n', 'decodeCiphertext', elt(255, n), 'ERR_DECODE');
      badBig(
        `ciphertext: element 100 is ${v}, Jacobi symbol −1`,
        'decodeCiphertext',
        elt(100, v),
        'ERR_DECODE',
      );
      badBig(
        'ciphertext: element 7 is p, Jacobi symbol 0',
        'decodeCiphertext',
        elt(7, p),
        'ERR_DECODE',
      );
      badBig(
        'decrypt without decoding: element 5 is p (Legendre symbol 0)',
        'decrypt',
        elt(5, p),
        'ERR_DECRYPT',
      );
    }

    if (id === 'gm') {
      bad('plaintext: 33 bytes', 'decodePlaintext', '00'.repeat(33), 'ERR_DECODE');
      bad('plaintext: 31 bytes', 'decodePlaintext', '00'.repeat(31), 'ERR_DECODE');
      bad('share: all zero (the neutral share)', 'decodeShare', '00'.repeat(32), 'ERR_IDENTITY');
      bad('share: 31 bytes', 'decodeShare', '01'.repeat(31), 'ERR_DECODE');
    } else {
      bad('plaintext: n', 'decodePlaintext', fixed(n, nBytes), 'ERR_DECODE');
      bad('plaintext: one byte short', 'decodePlaintext', fixed(1n, nBytes - 1), 'ERR_DECODE');
      if (id === 'rsa') {
        bad('plaintext: zero (not a unit)', 'decodePlaintext', fixed(0n, nBytes), 'ERR_DECODE');
        bad('plaintext: q (not a unit)', 'decodePlaintext', fixed(q, nBytes), 'ERR_DECODE');
        bad('share: 1 (the neutral share)', 'decodeShare', fixed(1n, nBytes), 'ERR_IDENTITY');
        bad('share: 0', 'decodeShare', fixed(0n, nBytes), 'ERR_DECODE');
      } else {
        bad('share: 0 (the neutral share)', 'decodeShare', fixed(0n, nBytes), 'ERR_IDENTITY');
      }
      bad('share: 2^256', 'decodeShare', fixed(1n << 256n, nBytes), 'ERR_DECODE');
      bad('share: n − 1', 'decodeShare', fixed(n - 1n, nBytes), 'ERR_DECODE');
      bad('share: 32 bytes (not |n|)', 'decodeShare', fixed(5n, 32), 'ERR_DECODE');
      // SPEC.md §3.3: an item secret ≥ 2^512 cannot come from honest values: ERR_DECRYPT.
      bad('secretBytes of 2^512', 'secretBytes', fixed(1n << 512n, nBytes), 'ERR_DECRYPT');
      bad('secretBytes of n − 2', 'secretBytes', fixed(n - 2n, nBytes), 'ERR_DECRYPT');
    }
    seedOps();
  }

  const titles: Record<SchemeId, string> = {
    'ec-elgamal': 'EC-ElGamal over ristretto255',
    paillier: 'Paillier (g = n + 1), 2048-bit keys',
    rsa: 'textbook RSA (e = 65537), 2048-bit keys',
    gm: 'Goldwasser–Micali, 2048-bit keys (ciphertexts of 64 KiB: outputs that no other case reads are written as SHA-256 digests)',
  };
  const sections: Record<SchemeId, string> = {
    'ec-elgamal': '§3.2',
    paillier: '§3.3',
    rsa: '§3.4',
    gm: '§3.5',
  };
  return {
    description: `The ${id} scheme: ${titles[id]}. Keys, plaintexts from seeds, shares, encryption, decryption, combine, uncombine, combinePlain, rerandomize, sampleUnknown, op, inv, applyShare, blind/unblind (blind encoded as ${id === 'ec-elgamal' ? 'the scalar ρ' : id === 'gm' ? 'the 32-byte Z' : 'Z in |n| bytes'}), secretBytes under two key pairs; malformed encodings with their error codes.`,
    spec: `SPEC.md §3.1, ${sections[id]}, §3.6${int ? ', §2.5 (key generation from a seeded stream)' : ''}`,
    seed: hex(fileSeed(name)),
    ...(int
      ? {
          notes: [
            'Integer keys: pure-BigInt prime generation (src/core/bigint.ts generatePrime) on seededRng(rngSeed); decryption uses fresh exponent blinding from the system RNG, which does not change results.',
          ],
        }
      : {}),
    valid,
    invalid,
  };
}

// ---------------------------------------------------------------------------------------------
// split-operators.json (SPEC.md §3.7)

function splitOperatorsFile(): VectorFile {
  const name = 'split-operators.json';
  const g = new Stream(name);
  const valid: Case[] = [];
  const invalid: Case[] = [];
  const e = (x: bigint) => hex(bigToBytes(x, 32));
  for (const id of ['xor', 'add-p', 'mul-p'] as SplitOperatorId[]) {
    const op = splitOperators[id];
    for (let i = 1; i <= 2; i++) {
      const seed = g.seed();
      valid.push({
        name: `${id} fromSeed ${i}`,
        op: 'fromSeed',
        operator: id,
        seed: hex(seed),
        element: hex(op.fromSeed(seed)),
      });
    }
    const rs = g.seed();
    valid.push({
      name: `${id} random`,
      op: 'random',
      operator: id,
      rngSeed: hex(rs),
      element: hex(op.random(seededRng(rs))),
    });
    const a = op.random(seededRng(g.seed()));
    const b = op.random(seededRng(g.seed()));
    valid.push({
      name: `${id} op`,
      op: 'op',
      operator: id,
      a: hex(a),
      b: hex(b),
      result: hex(op.op(a, b)),
    });
    valid.push({ name: `${id} inv`, op: 'inv', operator: id, a: hex(a), result: hex(op.inv(a)) });
    valid.push({
      name: `${id} op(a, inv(a)) is the neutral element`,
      op: 'op',
      operator: id,
      a: hex(a),
      b: hex(op.inv(a)),
      result: hex(op.op(a, op.inv(a))),
    });
    const bad = (n: string, which: string, input: string, error = 'ERR_DECODE', extra: Case = {}) =>
      invalid.push({ name: `${id} ${n}`, op: which, operator: id, ...extra, input, error });
    bad('element of 31 bytes', 'check', '01'.repeat(31));
    bad('element of 33 bytes', 'check', '01'.repeat(33));
    bad('fromSeed with a 31-byte seed', 'fromSeed', hex(g.bytes(31)), 'ERR_INVALID_ARGUMENT');
    bad('op with a 31-byte operand', 'op', '01'.repeat(31), 'ERR_DECODE', { b: hex(b) });
  }
  const P = SPLIT_P;
  valid.push({
    name: 'add-p op(p − 1, 1) = 0',
    op: 'op',
    operator: 'add-p',
    a: e(P - 1n),
    b: e(1n),
    result: e(0n),
  });
  valid.push({ name: 'add-p inv(0) = 0', op: 'inv', operator: 'add-p', a: e(0n), result: e(0n) });
  valid.push({
    name: 'mul-p inv(p − 1) = p − 1',
    op: 'inv',
    operator: 'mul-p',
    a: e(P - 1n),
    result: e(P - 1n),
  });
  valid.push({
    name: 'mul-p op(2, (p + 1)/2) = 1',
    op: 'op',
    operator: 'mul-p',
    a: e(2n),
    b: e((P + 1n) / 2n),
    result: e(1n),
  });
  valid.push({
    name: 'xor op(ff…, ff…) = 0',
    op: 'op',
    operator: 'xor',
    a: 'ff'.repeat(32),
    b: 'ff'.repeat(32),
    result: e(0n),
  });
  const bad = (
    n: string,
    id: string,
    which: string,
    input: string,
    error = 'ERR_DECODE',
    extra: Case = {},
  ) => invalid.push({ name: n, op: which, operator: id, ...extra, input, error });
  bad('add-p element p', 'add-p', 'check', e(P));
  bad('add-p element 2^256 − 1', 'add-p', 'check', 'ff'.repeat(32));
  bad('add-p op(p, 1)', 'add-p', 'op', e(P), 'ERR_DECODE', { b: e(1n) });
  bad('add-p inv(p)', 'add-p', 'inv', e(P));
  bad('mul-p element 0', 'mul-p', 'check', e(0n));
  bad('mul-p element p', 'mul-p', 'check', e(P));
  bad('mul-p inv(0)', 'mul-p', 'inv', e(0n));
  bad('mul-p op(1, 0)', 'mul-p', 'op', e(1n), 'ERR_DECODE', { b: e(0n) });
  invalid.push({
    name: 'unknown split operator "and"',
    op: 'getSplitOperator',
    id: 'and',
    error: 'ERR_UNSUPPORTED_SCHEME',
  });
  invalid.push({
    name: 'unknown split operator "__proto__"',
    op: 'getSplitOperator',
    id: '__proto__',
    error: 'ERR_UNSUPPORTED_SCHEME',
  });
  invalid.push({
    name: 'unknown scheme "elgamal"',
    op: 'getScheme',
    id: 'elgamal',
    error: 'ERR_UNSUPPORTED_SCHEME',
  });
  invalid.push({
    name: 'unknown scheme "constructor"',
    op: 'getScheme',
    id: 'constructor',
    error: 'ERR_UNSUPPORTED_SCHEME',
  });
  return {
    description:
      'The split operators xor, add-p, mul-p (p = 2^256 − 189) on 32-byte big-endian elements: fromSeed, random, op, inv; element checks; the operator and scheme registries.',
    spec: 'SPEC.md §3.7, §2.2',
    seed: hex(fileSeed(name)),
    valid,
    invalid,
  };
}

// ---------------------------------------------------------------------------------------------
// item.json (SPEC.md §4)

function refJson(r: ItemRef): Case {
  return {
    keyring: r.keyring,
    itemId: hex(r.itemId),
    masterVersion: r.masterVersion,
    managerVersion: r.managerVersion,
    entropy: hex(r.entropy),
  };
}

function itemFile(): VectorFile {
  const name = 'item.json';
  const g = new Stream(name);
  const valid: Case[] = [];
  const invalid: Case[] = [];
  const refs: [string, ItemRef][] = [
    [
      'default, 16-byte entropy',
      {
        keyring: 'default',
        itemId: g.bytes(16),
        masterVersion: 1,
        managerVersion: 1,
        entropy: g.bytes(16),
      },
    ],
    [
      'empty entropy',
      {
        keyring: 'default',
        itemId: g.bytes(16),
        masterVersion: 1,
        managerVersion: 1,
        entropy: EMPTY,
      },
    ],
    [
      '1-char keyring, extreme versions, 64-byte entropy',
      {
        keyring: 'a',
        itemId: g.bytes(16),
        masterVersion: 0xffffffff,
        managerVersion: 2,
        entropy: g.bytes(64),
      },
    ],
    [
      '64-char keyring',
      {
        keyring: 'k.0-_'.repeat(12).concat('abcd'),
        itemId: g.bytes(16),
        masterVersion: 3,
        managerVersion: 7,
        entropy: g.bytes(16),
      },
    ],
  ];
  const shareKey = g.seed();
  for (const [n, r] of refs) {
    valid.push({
      name: `itemContext: ${n}`,
      op: 'itemContext',
      ref: refJson(r),
      context: hex(itemContext(r)),
    });
    valid.push({
      name: `ticketBinding: ${n}`,
      op: 'ticketBinding',
      ref: refJson(r),
      bindingHash: hex(ticketBinding(r)),
    });
    valid.push({
      name: `shareSeed: ${n}`,
      op: 'shareSeed',
      shareKey: hex(shareKey),
      ref: refJson(r),
      shareSeed: hex(shareSeed(shareKey, r)),
    });
  }
  for (const [n, r] of [refs[0]!, refs[2]!]) {
    const masterSeed = g.seed();
    for (const id of ['ec-elgamal', 'paillier', 'rsa', 'gm'] as SchemeId[]) {
      const s: Any = schemes[id];
      const { pk } = schemeKey(id, 1);
      const M = s.plaintextFromSeed(pk, masterSeed);
      const Q = s.shareFromSeed(pk, shareSeed(shareKey, r));
      const S = s.secretBytes(pk, s.applyShare(pk, M, Q));
      valid.push({
        name: `${id} item secret: ${n}`,
        op: 'itemSecret',
        scheme: id,
        keys: [`scheme-${id}.json key-1`, `scheme-${id}.json key-2`],
        masterSeed: hex(masterSeed),
        shareKey: hex(shareKey),
        ref: refJson(r),
        master: hex(keyFreeValue(id, pk, M, 'plaintext')),
        share: hex(keyFreeValue(id, pk, Q, 'share')),
        secretBytes: hex(S),
        kek: hex(itemKek(S, r)),
      });
    }
    for (const id of ['xor', 'add-p', 'mul-p'] as SplitOperatorId[]) {
      const op = splitOperators[id];
      const M = op.fromSeed(masterSeed);
      const Q = op.fromSeed(shareSeed(shareKey, r));
      const S = op.op(M, Q);
      valid.push({
        name: `${id} item secret: ${n}`,
        op: 'itemSecret',
        operator: id,
        masterSeed: hex(masterSeed),
        shareKey: hex(shareKey),
        ref: refJson(r),
        master: hex(M),
        share: hex(Q),
        secretBytes: hex(S),
        kek: hex(itemKek(S, r)),
      });
    }
  }
  const r0 = refs[0]![1];
  for (const len of [15, 17, 0]) {
    const r = { ...r0, itemId: g.bytes(len) };
    invalid.push({
      name: `itemContext: ${len}-byte item id`,
      op: 'itemContext',
      ref: refJson(r),
      error: 'ERR_DECODE',
    });
  }
  invalid.push({
    name: 'shareSeed: 15-byte item id',
    op: 'shareSeed',
    shareKey: hex(shareKey),
    ref: refJson({ ...r0, itemId: g.bytes(15) }),
    error: 'ERR_DECODE',
  });
  return {
    description:
      'Items: itemContext, the ticket binding hash, shareSeed = HMAC(shareKey, "blindfold/v1/item-share" ‖ 0 ‖ itemContext), the share Q_i and item secret S_i = M ⊛ Q_i for every scheme and split operator, and KEK_i. For the integer schemes master and share are written as 32-byte big-endian integers and S_i (secretBytes) must be the same under both key pairs of scheme-<id>.json.',
    spec: 'SPEC.md §4.1–§4.4, §3.1 (secretBytes)',
    seed: hex(fileSeed(name)),
    valid,
    invalid,
  };
}

// ---------------------------------------------------------------------------------------------
// ticket.json (SPEC.md §4.4)

interface RawTicket {
  version?: number;
  ticketKeyVersion: number;
  keyring: Uint8Array;
  keyringLen?: number;
  itemId: Uint8Array;
  keyVersion: number;
  expiresAt: bigint;
  binding: Uint8Array;
}

/** A ticket built byte by byte (also malformed ones) with a correct MAC over its body. */
function rawTicket(key: Uint8Array, t: RawTicket): Uint8Array {
  const body = concat(
    u8(t.version ?? 1),
    u32be(t.ticketKeyVersion),
    u16be(t.keyringLen ?? t.keyring.length),
    t.keyring,
    t.itemId,
    u32be(t.keyVersion),
    u64be(t.expiresAt),
    t.binding,
  );
  return concat(body, hmacSha256(key, utf8('blindfold/v1/ticket'), u8(0), body));
}

function ticketFile(): VectorFile {
  const name = 'ticket.json';
  const g = new Stream(name);
  const valid: Case[] = [];
  const invalid: Case[] = [];
  const key1 = g.seed();
  const key2 = g.seed();
  const ref: ItemRef = {
    keyring: 'default',
    itemId: g.bytes(16),
    masterVersion: 1,
    managerVersion: 1,
    entropy: g.bytes(16),
  };
  const binding = ticketBinding(ref);
  const now = Math.floor(NOW_MS / 1000);
  const fieldsJson = (f: Case) => ({
    ...f,
    itemId: hex(f.itemId as Uint8Array),
    bindingHash: hex(f.bindingHash as Uint8Array),
  });
  const issue = (
    n: string,
    key: Uint8Array,
    f: Parameters<typeof issueTicket>[1] & { bindingHash: Uint8Array },
  ) => {
    const t = issueTicket(key, f);
    valid.push({
      name: n,
      op: 'issueTicket',
      key: hex(key),
      fields: fieldsJson(f as unknown as Case),
      ticket: hex(t),
    });
    return t;
  };
  const base = {
    ticketKeyVersion: 1,
    keyring: 'default',
    itemId: ref.itemId,
    keyVersion: 1,
    bindingHash: binding,
  };
  const tNever = issue('item ticket, never expires', key1, { ...base, expiresAt: 0 });
  const exp = now + 3600;
  const tExp = issue('item ticket, expires in an hour', key1, { ...base, expiresAt: exp });
  issue('1-char keyring, ticketKeyVersion 2^32 − 1, expiresAt 2^53 − 1', key2, {
    ticketKeyVersion: 0xffffffff,
    keyring: 'a',
    itemId: g.bytes(16),
    keyVersion: 0xffffffff,
    expiresAt: Number.MAX_SAFE_INTEGER,
    bindingHash: g.bytes(32),
  });
  issue('64-char keyring, nothing bound (zero binding)', key2, {
    ticketKeyVersion: 3,
    keyring: 'z'.repeat(64),
    itemId: g.bytes(16),
    keyVersion: 3,
    expiresAt: 0,
    bindingHash: new Uint8Array(32),
  });

  const expected = {
    keyring: 'default',
    itemId: hex(ref.itemId),
    keyVersion: 1,
    bindingHash: hex(binding),
  };
  const keys = { '1': hex(key1) };
  const verify = (
    n: string,
    t: Uint8Array,
    nowS: number,
    error?: string,
    opts: { keys?: Case; expected?: Case } = {},
  ) => {
    const c: Case = {
      name: n,
      op: 'verifyTicket',
      ticket: hex(t),
      keys: opts.keys ?? keys,
      expected: opts.expected ?? expected,
      now: nowS,
    };
    if (error) invalid.push({ ...c, error });
    else valid.push({ ...c, result: 'ok' });
  };
  verify('ok: never expires (now = 2^53 − 1)', tNever, Number.MAX_SAFE_INTEGER);
  verify('ok: now = expiresAt − 1', tExp, exp - 1);

  const raw: RawTicket = {
    ticketKeyVersion: 1,
    keyring: utf8('default'),
    itemId: ref.itemId,
    keyVersion: 1,
    expiresAt: 0n,
    binding,
  };
  const flip = (b: Uint8Array, i: number) => {
    const c = b.slice();
    c[i < 0 ? c.length + i : i]! ^= 1;
    return c;
  };
  verify('version 0x02', rawTicket(key1, { ...raw, version: 2 }), now, 'ERR_UNSUPPORTED_VERSION');
  verify('version 0x00', rawTicket(key1, { ...raw, version: 0 }), now, 'ERR_UNSUPPORTED_VERSION');
  verify('empty', EMPTY, now, 'ERR_DECODE');
  verify(
    '99 bytes: keyring length 0, no keyring',
    rawTicket(key1, { ...raw, keyring: EMPTY }),
    now,
    'ERR_DECODE',
  );
  verify(
    'keyring length field 0 in a 100-byte ticket',
    rawTicket(key1, { ...raw, keyring: utf8('d'), keyringLen: 0 }),
    now,
    'ERR_DECODE',
  );
  verify(
    'keyring of 65 characters',
    rawTicket(key1, { ...raw, keyring: utf8('k'.repeat(65)) }),
    now,
    'ERR_DECODE',
  );
  verify(
    'keyring length field beyond the ticket',
    rawTicket(key1, { ...raw, keyringLen: 64 }),
    now,
    'ERR_DECODE',
  );
  verify(
    'keyring with an upper-case letter',
    rawTicket(key1, { ...raw, keyring: utf8('Default') }),
    now,
    'ERR_DECODE',
  );
  verify(
    'keyring with a slash',
    rawTicket(key1, { ...raw, keyring: utf8('de/ault') }),
    now,
    'ERR_DECODE',
  );
  verify(
    'keyring of invalid UTF-8',
    rawTicket(key1, { ...raw, keyring: Uint8Array.of(0x64, 0xff, 0x66) }),
    now,
    'ERR_DECODE',
  );
  verify('expiresAt 2^53', rawTicket(key1, { ...raw, expiresAt: 1n << 53n }), now, 'ERR_DECODE');
  verify(
    'expiresAt 2^64 − 1',
    rawTicket(key1, { ...raw, expiresAt: (1n << 64n) - 1n }),
    now,
    'ERR_DECODE',
  );
  verify('truncated by one byte', tNever.subarray(0, tNever.length - 1), now, 'ERR_DECODE');
  verify('one byte appended', concat(tNever, u8(0)), now, 'ERR_DECODE');
  verify('wrong ticket key', tNever, now, 'ERR_TICKET_INVALID', { keys: { '1': hex(key2) } });
  verify(
    'ticketKeyVersion 2, no key for it',
    rawTicket(key1, { ...raw, ticketKeyVersion: 2 }),
    now,
    'ERR_TICKET_INVALID',
  );
  verify('MAC tampered (last byte)', flip(tNever, -1), now, 'ERR_TICKET_INVALID');
  verify(
    'body tampered (item id byte), MAC unchanged',
    flip(tNever, 7 + 7),
    now,
    'ERR_TICKET_INVALID',
  );
  verify(
    'body tampered (bindingHash byte), MAC unchanged',
    flip(tNever, 35 + 7),
    now,
    'ERR_TICKET_INVALID',
  );
  verify('authentic, for another keyring', tNever, now, 'ERR_TICKET_INVALID', {
    expected: { ...expected, keyring: 'other' },
  });
  verify('authentic, for another item', tNever, now, 'ERR_TICKET_INVALID', {
    expected: { ...expected, itemId: hex(flip(ref.itemId, 0)) },
  });
  verify('authentic, for another key version', tNever, now, 'ERR_TICKET_INVALID', {
    expected: { ...expected, keyVersion: 2 },
  });
  const other = ticketBinding({ ...ref, entropy: flip(ref.entropy, 0) });
  verify('authentic, for other appliance entropy (binding)', tNever, now, 'ERR_TICKET_INVALID', {
    expected: { ...expected, bindingHash: hex(other) },
  });
  const otherMv = ticketBinding({ ...ref, masterVersion: 2 });
  verify('authentic, for another master version (binding)', tNever, now, 'ERR_TICKET_INVALID', {
    expected: { ...expected, bindingHash: hex(otherMv) },
  });
  verify('expired: now = expiresAt', tExp, exp, 'ERR_TICKET_EXPIRED');
  verify('expired: now > expiresAt', tExp, exp + 86400, 'ERR_TICKET_EXPIRED');
  verify('expired and for another item: invalid first', tExp, exp + 1, 'ERR_TICKET_INVALID', {
    expected: { ...expected, itemId: hex(flip(ref.itemId, 15)) },
  });
  verify('expired and MAC tampered: invalid first', flip(tExp, -1), exp + 1, 'ERR_TICKET_INVALID');
  invalid.push({
    name: 'issue with a 31-byte ticket key',
    op: 'issueTicket',
    key: hex(g.bytes(31)),
    fields: fieldsJson({ ...base, expiresAt: 0 }),
    error: 'ERR_INVALID_ARGUMENT',
  });
  verify('verify with a 31-byte ticket key', tNever, now, 'ERR_INVALID_ARGUMENT', {
    keys: { '1': hex(key1.subarray(0, 31)) },
  });
  return {
    description:
      'Tickets: issuance and the verification order of SPEC.md §4.4 (decode → key → MAC → fields → expiry). `keys` maps a ticketKeyVersion to its key; `expected` is what the request names; `now` is in Unix seconds. Malformed tickets carry a correct MAC, so that only the decoder can refuse them.',
    spec: 'SPEC.md §4.4',
    seed: hex(fileSeed(name)),
    valid,
    invalid,
  };
}

// ---------------------------------------------------------------------------------------------
// mode-*.json (SPEC.md §5.1–§5.3)

interface Ca {
  rngSeed: Uint8Array;
  sk: Uint8Array;
  spki: Uint8Array;
}

function caKey(g: Stream): Ca {
  const rngSeed = g.seed();
  const rng = seededRng(rngSeed);
  for (;;) {
    const sk = rng(32);
    if (p256.utils.isValidSecretKey(sk)) {
      return { rngSeed, sk, spki: concat(P256_SPKI_PREFIX, p256.getPublicKey(sk, false)) };
    }
  }
}

/** ECDSA P-256 / SHA-256, DER, deterministic k (RFC 6979). */
export function signStatement(sk: Uint8Array, statement: Uint8Array): Uint8Array {
  return p256.sign(statement, sk, { format: 'der' });
}

interface ModeCtx {
  g: Stream;
  ca: Ca;
  applianceId: string;
  keyring: string;
  shareKey: Uint8Array;
  ticketKey: Uint8Array;
}

function modeCtx(g: Stream): ModeCtx {
  return {
    g,
    ca: caKey(g),
    applianceId: `ap-${hex(g.bytes(8))}`,
    keyring: 'default',
    shareKey: g.seed(),
    ticketKey: g.seed(),
  };
}

function keysResponse(
  c: ModeCtx,
  mode: Mode,
  scheme: string,
  publicKey: Uint8Array,
): { statement: Uint8Array; response: Case } {
  const statement = keyStatement(c.applianceId, c.keyring, 1, 1, mode, scheme, publicKey);
  return {
    statement,
    response: {
      keyring: c.keyring,
      managerVersion: 1,
      mode,
      scheme,
      publicKey: toB64u(publicKey),
      signature: toB64u(signStatement(c.ca.sk, statement)),
      masterVersion: 1,
    },
  };
}

/** Item creation (II) and, for each item, one recovery (III): the wire bodies and what they mean. */
function itemFlows(
  c: ModeCtx,
  count: number,
  prepare: () => { blinded?: Uint8Array; appliance?: Case; blindState?: Any },
  answer: (ref: ItemRef, blinded?: Uint8Array) => { answer: Uint8Array; manager?: Case },
  finish: (answer: Uint8Array, blindState: Any) => Uint8Array,
): Case[] {
  const items: Case[] = [];
  for (let i = 0; i < count; i++) {
    const entropy = c.g.bytes(16);
    const itemId = c.g.bytes(16);
    const ttlSeconds = i === 0 ? 0 : 3600;
    const ref: ItemRef = {
      keyring: c.keyring,
      itemId,
      masterVersion: 1,
      managerVersion: 1,
      entropy,
    };
    const ticket = issueTicket(c.ticketKey, {
      ticketKeyVersion: 1,
      keyring: c.keyring,
      itemId,
      keyVersion: 1,
      expiresAt: ttlSeconds === 0 ? 0 : Math.floor(NOW_MS / 1000) + ttlSeconds,
      bindingHash: ticketBinding(ref),
    });
    const step = (kind: 'create' | 'recover') => {
      const prep = prepare();
      const a = answer(ref, prep.blinded);
      const secret = finish(a.answer, prep.blindState);
      const request: Case =
        kind === 'create'
          ? {
              keyring: c.keyring,
              masterVersion: 1,
              managerVersion: 1,
              entropy: toB64u(entropy),
              ...(ttlSeconds ? { ttlSeconds } : {}),
            }
          : {
              keyring: c.keyring,
              itemId: toB64u(itemId),
              masterVersion: 1,
              managerVersion: 1,
              entropy: toB64u(entropy),
              ticket: toB64u(ticket),
            };
      if (prep.blinded) request.blinded = toB64u(prep.blinded);
      const response: Case =
        kind === 'create'
          ? {
              itemId: toB64u(itemId),
              managerVersion: 1,
              ticket: toB64u(ticket),
              answer: toB64u(a.answer),
            }
          : { answer: toB64u(a.answer) };
      return {
        ...(prep.appliance ? { appliance: prep.appliance } : {}),
        request,
        ...(a.manager ? { manager: a.manager } : {}),
        response,
        itemSecret: hex(secret),
        kek: hex(itemKek(secret, ref)),
      };
    };
    items.push({
      itemId: hex(itemId),
      entropy: hex(entropy),
      nowMs: NOW_MS,
      itemContext: hex(itemContext(ref)),
      bindingHash: hex(ticketBinding(ref)),
      shareSeed: hex(shareSeed(c.shareKey, ref)),
      create: step('create'),
      recover: step('recover'),
    });
  }
  return items;
}

function caJson(ca: Ca): Case {
  return { rngSeed: hex(ca.rngSeed), secretKey: hex(ca.sk), spki: hex(ca.spki) };
}

function modeSplitFile(): VectorFile {
  const name = 'mode-split.json';
  const valid: Case[] = [];
  const invalid: Case[] = [];
  const g = new Stream(name);
  for (const id of ['xor', 'add-p', 'mul-p'] as SplitOperatorId[]) {
    const c = modeCtx(g);
    const op = splitOperators[id];
    const masterSeed = g.seed();
    const M = op.fromSeed(masterSeed);
    const concealRngSeed = g.seed();
    const { blindedMaster, r } = splitMode.conceal(op, M, seededRng(concealRngSeed));
    const { statement, response } = keysResponse(c, 'split', id, EMPTY);
    const items = itemFlows(
      c,
      2,
      () => ({}),
      (ref) => {
        const q = op.fromSeed(shareSeed(c.shareKey, ref));
        return { answer: splitMode.answer(op, r, c.shareKey, ref), manager: { share: hex(q) } };
      },
      (answer) => splitMode.finish(op, blindedMaster, answer),
    );
    valid.push({
      name: id,
      op: 'split',
      operator: id,
      schemeCode: SPLIT_CODES[id],
      modeCode: MODE_CODES.split,
      applianceId: c.applianceId,
      keyring: c.keyring,
      ca: caJson(c.ca),
      manager: { shareKey: hex(c.shareKey), ticketKey: hex(c.ticketKey) },
      setup: {
        masterSeed: hex(masterSeed),
        master: hex(M),
        concealRngSeed: hex(concealRngSeed),
        r: hex(r),
        concealed: hex(blindedMaster),
        keysRequest: { managerVersion: 1, r: toB64u(r) },
        keyStatement: hex(statement),
        keysResponse: response,
        state: { masterVersion: 1, managerVersion: 1, concealed: toB64u(blindedMaster) },
      },
      items,
    });
    const q = splitOperators[id];
    const notElement =
      id === 'xor'
        ? '01'.repeat(31)
        : id === 'add-p'
          ? hex(bigToBytes(SPLIT_P, 32))
          : hex(new Uint8Array(32));
    invalid.push({
      name: `${id}: manager refuses r that is not an element`,
      op: 'managerCheckR',
      case: id,
      input: notElement,
      error: 'ERR_DECODE',
    });
    invalid.push({
      name: `${id}: r of 33 bytes`,
      op: 'managerCheckR',
      case: id,
      input: '02'.repeat(33),
      error: 'ERR_DECODE',
    });
    invalid.push({
      name: `${id}: appliance refuses an answer that is not an element`,
      op: 'applianceFinish',
      case: id,
      input: notElement,
      error: 'ERR_DECODE',
    });
    invalid.push({
      name: `${id}: answer of 31 bytes`,
      op: 'applianceFinish',
      case: id,
      input: hex(q.random(seededRng(g.seed())).subarray(1)),
      error: 'ERR_DECODE',
    });
    invalid.push({
      name: `${id}: recovery with the ticket of the other item`,
      op: 'recoverTicket',
      case: id,
      item: 1,
      ticketOfItem: 0,
      error: 'ERR_TICKET_INVALID',
    });
  }
  return {
    description:
      "Mode split: key setup (r_A registration and the signed key statement), item creation and recovery for each operator, with the JSON bodies as sent and the appliance's item secret and KEK. `manager.share` is Q_i. The key statement signature is ECDSA P-256 with RFC 6979 nonces (the manager itself uses OpenSSL's random nonces; any valid signature verifies).",
    spec: 'SPEC.md §5.1, §5 (common), §4',
    seed: hex(fileSeed(name)),
    valid,
    invalid,
  };
}

function homSetup(c: ModeCtx, id: SchemeId, mode: 'hom2' | 'hom2-opt') {
  const s: Any = schemes[id];
  // ec-elgamal keys come from the file's stream; integer keys are key-1 of scheme-<id>.json.
  const k: SchemeKey =
    id === 'ec-elgamal'
      ? (() => {
          const rngSeed = c.g.seed();
          const kp = s.generateKeyPair({ rng: seededRng(rngSeed) });
          return { rngSeed, pk: kp.publicKey, sk: kp.secretKey };
        })()
      : schemeKey(id, 1);
  const { pk, sk } = k;
  const publicKey: Uint8Array = s.encodePublicKey(pk);
  const masterSeed = c.g.seed();
  const M = s.plaintextFromSeed(pk, masterSeed);
  const concealRngSeed = c.g.seed();
  const concealed = homMode.conceal(s, pk, M, seededRng(concealRngSeed));
  const { statement, response } = keysResponse(c, mode, id, publicKey);
  const setup: Case = {
    keyRngSeed: hex(k.rngSeed),
    publicKey: hex(publicKey),
    secretKey: hex(s.encodeSecretKey(sk)),
    masterSeed: hex(masterSeed),
    master: hex(s.encodePlaintext(pk, M)),
    concealRngSeed: hex(concealRngSeed),
    keysRequest: { managerVersion: 1 },
    keyStatement: hex(statement),
    keysResponse: response,
    state: {
      masterVersion: 1,
      managerVersion: 1,
      publicKey: toB64u(publicKey),
      concealed: toB64u(s.encodeCiphertext(pk, concealed)),
    } as Case,
  };
  return { s, pk, sk, M, concealed, setup };
}

function homBad(
  invalid: Case[],
  id: SchemeId,
  caseName: string,
  pk: Any,
  sk: Any,
  blind: Any,
  where: 'hom2' | 'hom2-opt',
) {
  const push = (n: string, op: string, input: string, error: string) =>
    invalid.push({ name: `${caseName}: ${n}`, op, case: caseName, input, error });
  const req = where === 'hom2' ? 'blinded request' : 'opt-setup blinded value';
  if (id === 'ec-elgamal') {
    const zero = '00'.repeat(32);
    push(
      `manager refuses a ${req} with c1 the identity`,
      'managerDecodeBlinded',
      zero + hex(randomPoint(seededRng(new Uint8Array(32)))),
      'ERR_IDENTITY',
    );
    push(
      `manager refuses a ${req} of 63 bytes`,
      'managerDecodeBlinded',
      '01'.repeat(63),
      'ERR_DECODE',
    );
    push(
      `manager refuses a ${req} with a non-canonical point`,
      'managerDecodeBlinded',
      RFC9496_BAD['negative field element'].repeat(2),
      'ERR_DECODE',
    );
    push('appliance refuses the identity as answer', 'applianceFinish', zero, 'ERR_IDENTITY');
    push(
      'appliance refuses a non-canonical answer',
      'applianceFinish',
      RFC9496_BAD['non-canonical field encoding (s ≥ p)'],
      'ERR_DECODE',
    );
  } else if (id === 'gm') {
    push(
      `manager refuses a ${req} of 32 bytes`,
      'managerDecodeBlinded',
      '01'.repeat(32),
      'ERR_DECODE',
    );
    push(
      'appliance refuses an answer of 31 bytes',
      'applianceFinish',
      '01'.repeat(31),
      'ERR_DECODE',
    );
    push(
      'appliance refuses an answer of 64 bytes',
      'applianceFinish',
      '01'.repeat(64),
      'ERR_DECODE',
    );
  } else {
    const n: bigint = pk.n;
    const nBytes: number = pk.nBytes;
    const ctLen = id === 'paillier' ? byteLength(n * n) : nBytes;
    push(
      `manager refuses a ${req} of zero`,
      'managerDecodeBlinded',
      fixed(0n, ctLen),
      'ERR_DECODE',
    );
    push(
      `manager refuses a ${req} that is not a unit (p)`,
      'managerDecodeBlinded',
      fixed(sk.p, ctLen),
      'ERR_DECODE',
    );
    push(
      `manager refuses a ${req} of the wrong length`,
      'managerDecodeBlinded',
      fixed(5n, ctLen - 1),
      'ERR_DECODE',
    );
    push('appliance refuses an answer ≥ n', 'applianceFinish', fixed(n, nBytes), 'ERR_DECODE');
    // An answer that unblinds to exactly 2^512: S_i ≥ 2^512 MUST fail as ERR_DECRYPT (SPEC.md §3.3).
    const z: bigint = blind.z;
    const y = id === 'paillier' ? (z + (1n << 512n)) % n : (z * (1n << 512n)) % n;
    push(
      'appliance refuses an answer that unblinds to S_i = 2^512',
      'applianceFinish',
      fixed(y, nBytes),
      'ERR_DECRYPT',
    );
    if (id === 'rsa')
      push(
        'appliance refuses an answer that is not a unit (q)',
        'applianceFinish',
        fixed(sk.q, nBytes),
        'ERR_DECODE',
      );
  }
}

function modeHom2File(): VectorFile {
  const name = 'mode-hom2.json';
  const g = new Stream(name);
  const valid: Case[] = [];
  const invalid: Case[] = [];
  for (const id of ['ec-elgamal', 'paillier', 'rsa', 'gm'] as SchemeId[]) {
    const c = modeCtx(g);
    const { s, pk, sk, concealed, setup } = homSetup(c, id, 'hom2');
    let lastBlind: Any;
    const items = itemFlows(
      c,
      id === 'gm' ? 1 : 2,
      () => {
        const blindRngSeed = g.seed();
        const b = homMode.request(s, pk, concealed, seededRng(blindRngSeed));
        lastBlind = b.blind;
        return {
          blinded: s.encodeCiphertext(pk, b.ciphertext),
          appliance: { blindRngSeed: hex(blindRngSeed), blind: hex(encodeBlind(id, pk, b.blind)) },
          blindState: b.blind,
        };
      },
      (ref, blinded) => {
        const C = s.decodeCiphertext(pk, blinded!);
        const q = s.shareFromSeed(pk, shareSeed(c.shareKey, ref));
        const y = homMode.answer(s, sk, pk, C, c.shareKey, ref);
        return {
          answer: s.encodePlaintext(pk, y),
          manager: {
            decrypted: hex(s.encodePlaintext(pk, s.decrypt(sk, C))),
            share: hex(s.encodeShare(pk, q)),
          },
        };
      },
      (answer, blind) => homMode.finish(s, pk, blind, s.decodePlaintext(pk, answer)),
    );
    valid.push({
      name: id,
      op: 'hom2',
      scheme: id,
      schemeCode: SCHEME_CODES[id],
      modeCode: MODE_CODES.hom2,
      applianceId: c.applianceId,
      keyring: c.keyring,
      ca: caJson(c.ca),
      manager: { shareKey: hex(c.shareKey), ticketKey: hex(c.ticketKey) },
      setup,
      items,
    });
    // Malformed answers are checked against the blind of the last recovery above.
    homBad(invalid, id, id, pk, sk, lastBlind, 'hom2');
    const last = items.length - 1;
    if (last > 0)
      invalid.push({
        name: `${id}: recovery with the ticket of the other item`,
        op: 'recoverTicket',
        case: id,
        item: last,
        ticketOfItem: 0,
        error: 'ERR_TICKET_INVALID',
      });
  }
  return {
    description:
      "Mode hom2 for every scheme: key setup (the manager's key pair for the appliance, the signed key statement, Enc_{D_A}(M) in the appliance state), then item creation and recovery, each with a fresh blinding (appliance.blindRngSeed → blind β), the decryption the manager sees (manager.decrypted), the share Q_i (manager.share), the answer, the item secret and the KEK. Invalid cases: what the manager must refuse as `blinded`, what the appliance must refuse as `answer` (checked with the blind of the last recovery of the case).",
    spec: 'SPEC.md §5.2, §5 (common), §3',
    seed: hex(fileSeed(name)),
    valid,
    invalid,
  };
}

function modeHom2OptFile(): VectorFile {
  const name = 'mode-hom2-opt.json';
  const g = new Stream(name);
  const valid: Case[] = [];
  const invalid: Case[] = [];
  for (const id of ['ec-elgamal', 'paillier', 'rsa', 'gm'] as SchemeId[]) {
    const c = modeCtx(g);
    const { s, pk, sk, concealed, setup } = homSetup(c, id, 'hom2-opt');
    const optSeed = g.seed();
    const b = s.blind(pk, concealed, seededRng(optSeed));
    const blinded = s.encodeCiphertext(pk, b.ciphertext);
    const X = homMode.optSetup(s, sk, s.decodeCiphertext(pk, blinded));
    setup.optSeed = hex(optSeed);
    setup.betaA = hex(encodeBlind(id, pk, b.blind));
    setup.optSetupRequest = { managerVersion: 1, blinded: toB64u(blinded) };
    setup.optSetupResponse = { ok: true };
    setup.xA = hex(s.encodePlaintext(pk, X));
    (setup.state as Case).optSeed = toB64u(optSeed);
    const items = itemFlows(
      c,
      2,
      () => ({ blindState: b.blind }),
      (ref) => {
        const q = s.shareFromSeed(pk, shareSeed(c.shareKey, ref));
        return {
          answer: s.encodePlaintext(pk, homMode.optAnswer(s, pk, X, c.shareKey, ref)),
          manager: { share: hex(s.encodeShare(pk, q)) },
        };
      },
      (answer, blind) => homMode.finish(s, pk, blind, s.decodePlaintext(pk, answer)),
    );
    valid.push({
      name: id,
      op: 'hom2-opt',
      scheme: id,
      schemeCode: SCHEME_CODES[id],
      modeCode: MODE_CODES['hom2-opt'],
      applianceId: c.applianceId,
      keyring: c.keyring,
      ca: caJson(c.ca),
      manager: { shareKey: hex(c.shareKey), ticketKey: hex(c.ticketKey) },
      setup,
      items,
    });
    homBad(invalid, id, id, pk, sk, b.blind, 'hom2-opt');
    invalid.push({
      name: `${id}: recovery with the ticket of the other item`,
      op: 'recoverTicket',
      case: id,
      item: 1,
      ticketOfItem: 0,
      error: 'ERR_TICKET_INVALID',
    });
  }
  return {
    description:
      "Mode hom2-opt for every scheme: the hom2 key setup, then opt-setup (β_A = the first draw of seededRng(optSeed) in blind, the blinded value sent, X_A = Dec(C') kept by the manager), item creation and recovery without any request value (the answer X_A ⊛ Q_i repeats per item), the item secret and KEK. Invalid cases: malformed opt-setup values and answers (answers checked with β_A).",
    spec: 'SPEC.md §5.3, §5 (common), §2.5',
    seed: hex(fileSeed(name)),
    valid,
    invalid,
  };
}

// ---------------------------------------------------------------------------------------------
// file.json (SPEC.md §6)

export function fieldsJson(f: HeaderFields): Case {
  return {
    scheme: f.scheme,
    mode: f.mode,
    keyring: f.keyring,
    masterVersion: f.masterVersion,
    managerKeyVersion: f.managerKeyVersion,
    itemId: hex(f.itemId),
    itemData: hex(f.itemData),
    ticket: hex(f.ticket),
    fileNonce: hex(f.fileNonce),
  };
}

export async function encryptToBytes(
  header: Uint8Array,
  dek: Uint8Array,
  fileNonce: Uint8Array,
  plaintext: Uint8Array,
): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      parts.push(chunk);
      cb();
    },
  });
  await encryptStream(Readable.from([Buffer.from(plaintext)]), out, { header, dek, fileNonce });
  return new Uint8Array(Buffer.concat(parts));
}

async function fileFile(): Promise<VectorFile> {
  const name = 'file.json';
  const g = new Stream(name);
  const valid: Case[] = [];
  const invalid: Case[] = [];
  const ticketKey = g.seed();
  const mkFields = (
    keyring: string,
    itemData: Uint8Array,
    withTicket: boolean,
    fileNonce: Uint8Array,
  ): HeaderFields => {
    const itemId = g.bytes(16);
    const ticket = withTicket
      ? issueTicket(ticketKey, {
          ticketKeyVersion: 1,
          keyring,
          itemId,
          keyVersion: 1,
          expiresAt: 0,
          bindingHash: ticketBinding({
            keyring,
            itemId,
            masterVersion: 1,
            managerVersion: 1,
            entropy: itemData,
          }),
        })
      : EMPTY;
    return {
      scheme: SCHEME_CODES['ec-elgamal'],
      mode: MODE_CODES['hom2-opt'],
      keyring,
      masterVersion: 1,
      managerKeyVersion: 1,
      itemId,
      itemData,
      ticket,
      fileNonce,
    };
  };

  // Headers (SPEC.md §6.1).
  const headerCase = (n: string, keyring: string, itemData: Uint8Array, withTicket: boolean) => {
    const kek = g.seed();
    const dek = g.seed();
    const fields = mkFields(keyring, itemData, withTicket, g.bytes(16));
    const rngSeed = g.seed();
    const header = sealHeader(nodeAesGcm, fields, kek, dek, seededRng(rngSeed));
    valid.push({
      name: n,
      op: 'sealHeader',
      fields: fieldsJson(fields),
      kek: hex(kek),
      dek: hex(dek),
      rngSeed: hex(rngSeed),
      headerLength: header.length,
      header: hex(header),
    });
    return { header, kek, dek, fields };
  };
  const h249 = headerCase(
    'keyring "default", 16-byte entropy, 106-byte ticket: 249 bytes',
    'default',
    g.bytes(16),
    true,
  );
  headerCase(
    'smallest header: 1-char keyring, no itemData, no ticket (121 bytes)',
    'a',
    EMPTY,
    false,
  );
  headerCase('64-char keyring, 64-byte entropy', 'k'.repeat(64), g.bytes(64), true);

  for (const [i, last] of [
    [0, false],
    [0, true],
    [1, false],
    [255, true],
    [256, false],
    [0xffffffff, true],
    [2 ** 32, false],
    [Number.MAX_SAFE_INTEGER, true],
  ] as const) {
    valid.push({
      name: `chunk nonce ${i}${last ? ', last' : ''}`,
      op: 'chunkNonce',
      index: i,
      last,
      nonce: hex(chunkNonce(i, last)),
    });
  }
  for (let i = 0; i < 2; i++) {
    const dek = g.seed();
    const fileNonce = g.bytes(16);
    valid.push({
      name: `payload key ${i + 1}`,
      op: 'payloadKey',
      dek: hex(dek),
      fileNonce: hex(fileNonce),
      payloadKey: hex(payloadKey(dek, fileNonce)),
    });
  }

  // Whole files: dek = rng(32), fileNonce = rng(16), then sealHeader draws wrapNonce = rng(12).
  const files = new Map<
    string,
    {
      bytes: Uint8Array;
      headerLength: number;
      kek: Uint8Array;
      plaintext: Uint8Array;
      dek: Uint8Array;
      fileNonce: Uint8Array;
    }
  >();
  const fileCase = async (n: string, size: number, inline: 'full' | 'digest') => {
    const kek = g.seed();
    const rngSeed = g.seed();
    const plaintextSeed = g.seed();
    const plaintext = seededRng(plaintextSeed)(size);
    const fieldsNoNonce = mkFields('default', g.bytes(16), true, new Uint8Array(16));
    const rng = seededRng(rngSeed);
    const dek = rng(32);
    const fileNonce = rng(16);
    const fields = { ...fieldsNoNonce, fileNonce };
    const header = sealHeader(nodeAesGcm, fields, kek, dek, rng);
    const bytes = await encryptToBytes(header, dek, fileNonce, plaintext);
    files.set(n, { bytes, headerLength: header.length, kek, plaintext, dek, fileNonce });
    valid.push({
      name: n,
      op: 'encryptFile',
      fields: (({ fileNonce: _, ...rest }) => rest)(fieldsJson(fields)),
      kek: hex(kek),
      rngSeed: hex(rngSeed),
      dek: hex(dek),
      fileNonce: hex(fileNonce),
      plaintextSeed: hex(plaintextSeed),
      plaintextSize: size,
      ...(size <= 100
        ? { plaintext: hex(plaintext) }
        : { plaintextSha256: hex(sha256(plaintext)) }),
      headerLength: header.length,
      fileSize: bytes.length,
      ...(inline === 'full' ? { file: hex(bytes) } : { fileSha256: hex(sha256(bytes)) }),
    });
  };
  await fileCase('file-empty', 0, 'full');
  await fileCase('file-1', 1, 'full');
  await fileCase('file-100', 100, 'full');
  await fileCase('file-65536 (one full final chunk)', CHUNK_SIZE, 'digest');
  await fileCase('file-65537 (two chunks)', CHUNK_SIZE + 1, 'full');
  await fileCase('file-3-chunks', 2 * CHUNK_SIZE + 10, 'digest');

  const f100 = files.get('file-100')!;
  const rwSeed = g.seed();
  const newKek = g.seed();
  const changes = {
    masterVersion: 2,
    managerKeyVersion: 3,
    itemId: g.bytes(16),
    itemData: g.bytes(16),
    ticket: g.bytes(106),
  };
  const newHeader = rewrapHeader(
    f100.bytes.subarray(0, f100.headerLength),
    f100.kek,
    newKek,
    changes,
    seededRng(rwSeed),
  );
  valid.push({
    name: 'rewrap file-100',
    op: 'rewrap',
    file: 'file-100',
    oldKek: hex(f100.kek),
    newKek: hex(newKek),
    changes: {
      ...changes,
      itemId: hex(changes.itemId),
      itemData: hex(changes.itemData),
      ticket: hex(changes.ticket),
    },
    rngSeed: hex(rwSeed),
    newHeader: hex(newHeader),
  });

  for (const [n, fileSize, hl, plainSize] of [
    ['empty file', 249 + 16, 249, 0],
    ['one byte', 249 + 17, 249, 1],
    ['one full final chunk', 249 + SEALED_CHUNK_SIZE, 249, CHUNK_SIZE],
    ['two chunks, one byte in the second', 249 + SEALED_CHUNK_SIZE + 17, 249, CHUNK_SIZE + 1],
    ['two full chunks', 121 + 2 * SEALED_CHUNK_SIZE, 121, 2 * CHUNK_SIZE],
  ] as const) {
    valid.push({
      name: `plainSize: ${n}`,
      op: 'plainSizeFromCiphertext',
      fileSize,
      headerLength: hl,
      plainSize,
    });
  }
  for (const [n, fileSize, error] of [
    ['header only', 249, 'ERR_TRUNCATED'],
    ['15 payload bytes', 249 + 15, 'ERR_TRUNCATED'],
    ['ends inside the tag of a final chunk', 249 + SEALED_CHUNK_SIZE + 5, 'ERR_TRUNCATED'],
    ['empty final chunk after a full chunk', 249 + SEALED_CHUNK_SIZE + 16, 'ERR_DECODE'],
  ] as const) {
    invalid.push({
      name: `plainSize: ${n}`,
      op: 'plainSizeFromCiphertext',
      fileSize,
      headerLength: 249,
      error,
    });
  }

  // Malformed headers (SPEC.md §6.4), from the 249-byte header above.
  const H = h249.header;
  const hl = H.length;
  /** The 249-byte header with `f` applied to a copy, as hex. */
  const mut = (f: (b: Uint8Array) => void): string => {
    const b = H.slice();
    f(b);
    return hex(b);
  };
  const setU32 = (b: Uint8Array, o: number, v: number) => b.set(u32be(v), o);
  const hdr = (n: string, input: string, error: string) =>
    invalid.push({ name: `header: ${n}`, op: 'decodeHeader', input, error });
  hdr('empty', '', 'ERR_TRUNCATED');
  hdr('11 bytes', hex(H.subarray(0, 11)), 'ERR_TRUNCATED');
  hdr('one byte shorter than headerLength', hex(H.subarray(0, hl - 1)), 'ERR_TRUNCATED');
  hdr(
    'bad magic',
    mut((b) => {
      b[0] = 0x62;
    }),
    'ERR_DECODE',
  );
  hdr('magic of another format (age)', hex(concat(utf8('age-enc'), H.subarray(7))), 'ERR_DECODE');
  hdr(
    'formatVersion 0x02',
    mut((b) => {
      b[7] = 2;
    }),
    'ERR_UNSUPPORTED_VERSION',
  );
  hdr(
    'formatVersion 0x00',
    mut((b) => {
      b[7] = 0;
    }),
    'ERR_UNSUPPORTED_VERSION',
  );
  hdr(
    'headerLength 120',
    mut((b) => setU32(b, 8, 120)),
    'ERR_DECODE',
  );
  hdr(
    'headerLength 131255',
    mut((b) => setU32(b, 8, 131255)),
    'ERR_DECODE',
  );
  hdr(
    'headerLength 0',
    mut((b) => setU32(b, 8, 0)),
    'ERR_DECODE',
  );
  hdr(
    'headerLength one less than the fields (wrappedDek overruns)',
    mut((b) => setU32(b, 8, hl - 1)),
    'ERR_DECODE',
  );
  hdr(
    'headerLength one more, with a byte left over inside it',
    hex(
      concat(
        (() => {
          const b = H.slice();
          setU32(b, 8, hl + 1);
          return b;
        })(),
        u8(0),
      ),
    ),
    'ERR_DECODE',
  );
  const k = 7; // "default"
  const withKeyring = (kr: Uint8Array) => {
    const b = concat(H.subarray(0, 14), lp16(kr), H.subarray(16 + k));
    setU32(b, 8, b.length);
    return hex(b);
  };
  hdr('keyring length 0', withKeyring(EMPTY), 'ERR_DECODE');
  hdr('keyring of 65 characters', withKeyring(utf8('k'.repeat(65))), 'ERR_DECODE');
  hdr('keyring with an upper-case letter', withKeyring(utf8('Default')), 'ERR_DECODE');
  hdr('keyring with a space', withKeyring(utf8('def ult')), 'ERR_DECODE');
  hdr('keyring of invalid UTF-8', withKeyring(Uint8Array.of(0x64, 0xc3, 0x28, 0x66)), 'ERR_DECODE');
  const itemDataOff = 40 + k;
  hdr(
    'itemData length overruns the header',
    mut((b) => b.set(u16be(0xffff), itemDataOff)),
    'ERR_DECODE',
  );
  const ticketOff = 42 + k + 16;
  hdr(
    'ticket length overruns the header',
    mut((b) => b.set(u16be(0xffff), ticketOff)),
    'ERR_DECODE',
  );
  hdr(
    'ticket length one short (a byte left over)',
    mut((b) => b.set(u16be(105), ticketOff)),
    'ERR_DECODE',
  );

  const open = (n: string, input: string, kek: Uint8Array) =>
    invalid.push({
      name: `unwrap: ${n}`,
      op: 'openHeader',
      input,
      kek: hex(kek),
      error: 'ERR_DECRYPT',
    });
  open('wrong KEK', hex(H), g.seed());
  open(
    'masterVersion changed (AAD)',
    mut((b) => {
      b[16 + k + 3]! ^= 1;
    }),
    h249.kek,
  );
  open(
    'scheme byte changed (AAD)',
    mut((b) => {
      b[12] = 2;
    }),
    h249.kek,
  );
  open(
    'fileNonce changed (AAD)',
    mut((b) => {
      b[hl - 76]! ^= 0x80;
    }),
    h249.kek,
  );
  open(
    'wrapNonce changed',
    mut((b) => {
      b[hl - 60]! ^= 1;
    }),
    h249.kek,
  );
  open(
    'wrappedDek ciphertext changed',
    mut((b) => {
      b[hl - 48]! ^= 1;
    }),
    h249.kek,
  );
  open(
    'wrappedDek tag changed',
    mut((b) => {
      b[hl - 1]! ^= 1;
    }),
    h249.kek,
  );

  // Malformed files (SPEC.md §6.2–§6.4): pieces of the valid files above.
  const fileBytes = (ref: string, field: string) =>
    field === 'file' ? files.get(ref)?.bytes : undefined;
  const fileBad = (n: string, base: string, parts: Piece[], error: string, kekOf = base) => {
    const x = pieces(
      valid,
      parts.map((p) => (p.hex !== undefined ? p : { ref: base, field: 'file', ...p })),
      fileBytes,
    );
    invalid.push({
      name: `file: ${n}`,
      op: 'decryptFile',
      input: x.input,
      inputSha256: x.inputSha256,
      kek: hex(files.get(kekOf)!.kek),
      error,
    });
  };
  const F3 = 'file-3-chunks';
  const f3 = files.get(F3)!;
  const h3 = f3.headerLength;
  const c0 = h3;
  const c1 = h3 + SEALED_CHUNK_SIZE;
  const c2 = h3 + 2 * SEALED_CHUNK_SIZE;
  const end3 = f3.bytes.length;
  fileBad(
    '3 chunks cut at a chunk boundary after chunk 1',
    F3,
    [{ start: 0, end: c2 }],
    'ERR_TRUNCATED',
  );
  fileBad(
    '3 chunks cut at a chunk boundary after chunk 0',
    F3,
    [{ start: 0, end: c1 }],
    'ERR_TRUNCATED',
  );
  fileBad('cut inside the final chunk', F3, [{ start: 0, end: end3 - 1 }], 'ERR_DECRYPT');
  fileBad(
    'ends inside a tag (5 bytes after two full chunks)',
    F3,
    [{ start: 0, end: c2 + 5 }],
    'ERR_TRUNCATED',
  );
  fileBad(
    'empty final chunk after full chunks (authentic tag, impossible layout)',
    F3,
    [
      { start: 0, end: c2 },
      { hex: hex(nodeAesGcm.seal(payloadKey(f3.dek, f3.fileNonce), chunkNonce(2, true), EMPTY)) },
    ],
    'ERR_DECODE',
  );
  fileBad(
    'chunks 0 and 1 swapped',
    F3,
    [
      { start: 0, end: c0 },
      { start: c1, end: c2 },
      { start: c0, end: c1 },
      { start: c2, end: end3 },
    ],
    'ERR_DECRYPT',
  );
  fileBad(
    'chunk 1 dropped',
    F3,
    [
      { start: 0, end: c1 },
      { start: c2, end: end3 },
    ],
    'ERR_DECRYPT',
  );
  fileBad(
    'chunk 0 repeated in place of chunk 1',
    F3,
    [
      { start: 0, end: c1 },
      { start: c0, end: c1 },
      { start: c2, end: end3 },
    ],
    'ERR_DECRYPT',
  );
  fileBad('one byte appended', F3, [{ start: 0, end: end3 }, { hex: '00' }], 'ERR_DECRYPT');
  fileBad(
    'final chunk appended twice',
    F3,
    [
      { start: 0, end: end3 },
      { start: c2, end: end3 },
    ],
    'ERR_DECRYPT',
  );
  fileBad(
    'byte flipped in chunk 1',
    F3,
    [
      { start: 0, end: c1 + 100 },
      { hex: hex(Uint8Array.of(f3.bytes[c1 + 100]! ^ 1)) },
      { start: c1 + 101, end: end3 },
    ],
    'ERR_DECRYPT',
  );
  fileBad(
    'tag of the final chunk flipped',
    F3,
    [{ start: 0, end: end3 - 1 }, { hex: hex(Uint8Array.of(f3.bytes[end3 - 1]! ^ 0x80)) }],
    'ERR_DECRYPT',
  );
  const F100 = 'file-100';
  fileBad('file-100: header only', F100, [{ start: 0, end: f100.headerLength }], 'ERR_TRUNCATED');
  fileBad(
    'file-100: 15 payload bytes',
    F100,
    [{ start: 0, end: f100.headerLength + 15 }],
    'ERR_TRUNCATED',
  );
  fileBad('file-100: one byte appended', F100, [{}, { hex: '00' }], 'ERR_DECRYPT');
  fileBad(
    'file-100: cut by one byte',
    F100,
    [{ start: 0, end: f100.bytes.length - 1 }],
    'ERR_DECRYPT',
  );
  const F1 = 'file-1';
  const f1 = files.get(F1)!;
  fileBad(
    'header of file-100 on the payload of file-1',
    F100,
    [
      { start: 0, end: f100.headerLength },
      { ref: F1, field: 'file', start: f1.headerLength },
    ],
    'ERR_DECRYPT',
  );
  fileBad('file-1 with the wrong KEK (that of file-100)', F1, [{}], 'ERR_DECRYPT', F100);
  const F2 = 'file-65537 (two chunks)';
  const f2 = files.get(F2)!;
  fileBad(
    'two chunks cut after the full chunk',
    F2,
    [{ start: 0, end: f2.headerLength + SEALED_CHUNK_SIZE }],
    'ERR_TRUNCATED',
  );

  // Range decryption (SPEC.md §6.3).
  for (const [base, start, end] of [
    [F2, 0, 0],
    [F2, 0, 1],
    [F2, 65530, 65537],
    [F2, 65536, 65537],
    [F3, 100, 200],
    [F3, 65000, 131080],
    [F3, 131072, 131082],
  ] as const) {
    const f = files.get(base)!;
    const part = f.plaintext.subarray(start, end);
    valid.push({
      name: `range [${start}, ${end}) of ${base}`,
      op: 'decryptRange',
      file: base,
      start,
      end,
      ...(part.length <= 64 ? { plaintext: hex(part) } : { plaintextSha256: hex(sha256(part)) }),
    });
  }
  const rangeBad = (
    n: string,
    base: string,
    start: number,
    end: number,
    error: string,
    parts?: Piece[],
  ) => {
    const x = parts
      ? pieces(
          valid,
          parts.map((p) => (p.hex !== undefined ? p : { ref: base, field: 'file', ...p })),
          fileBytes,
        )
      : undefined;
    invalid.push({
      name: `range: ${n}`,
      op: 'decryptRange',
      file: base,
      start,
      end,
      ...(x ? { input: x.input, inputSha256: x.inputSha256 } : {}),
      error,
    });
  };
  rangeBad('end beyond the plaintext', F2, 0, CHUNK_SIZE + 2, 'ERR_INVALID_ARGUMENT');
  rangeBad('start > end', F2, 10, 5, 'ERR_INVALID_ARGUMENT');
  rangeBad('file cut at a chunk boundary', F3, 0, 10, 'ERR_TRUNCATED', [{ start: 0, end: c2 }]);
  rangeBad('final chunk tampered, range in chunk 0', F3, 0, 10, 'ERR_DECRYPT', [
    { start: 0, end: end3 - 1 },
    { hex: hex(Uint8Array.of(f3.bytes[end3 - 1]! ^ 1)) },
  ]);

  return {
    description:
      'The Blindfold file: headers (sealHeader with wrapNonce = the first 12 bytes of seededRng(rngSeed)), chunk nonces, payload keys, whole files (dek = rng(32), fileNonce = rng(16), then wrapNonce = rng(12), all from seededRng(rngSeed); plaintext = seededRng(plaintextSeed)(plaintextSize)), rewrap, plaintext size arithmetic and range decryption. Malformed headers, failed unwraps, and damaged files (truncated, extended, reordered, tampered) with their error codes. The two largest files are given by digest and rebuilt from their seeds; damaged files are pieces of the valid ones.',
    spec: 'SPEC.md §6.1–§6.4, §5.5 (rewrap)',
    seed: hex(fileSeed(name)),
    valid,
    invalid,
  };
}

// ---------------------------------------------------------------------------------------------
// seal.json (SPEC.md §9)

function sealFormula(
  root: Uint8Array,
  name: string,
  nonce: Uint8Array,
  plaintext: Uint8Array,
): Uint8Array {
  const key = deriveKey(root, 'seal', EMPTY, 32);
  const aad = concat(utf8('blindfold/v1/seal'), u8(0), utf8(name));
  return concat(u8(1), rootKeyId(root), nonce, nodeAesGcm.seal(key, nonce, plaintext, aad));
}

function sealFile(): VectorFile {
  const name = 'seal.json';
  const g = new Stream(name);
  const valid: Case[] = [];
  const invalid: Case[] = [];
  const root = g.seed();
  const root2 = g.seed();
  valid.push({
    name: 'root key id',
    op: 'rootKeyId',
    root: hex(root),
    keyId: hex(rootKeyId(root)),
  });
  valid.push({
    name: 'root key id (second root)',
    op: 'rootKeyId',
    root: hex(root2),
    keyId: hex(rootKeyId(root2)),
  });
  const blobs: Record<string, Uint8Array> = {};
  for (const [n, secretName, len] of [
    ['ticket key', 'keyring/default/v1/ticket', 32],
    ['share key', 'keyring/default/v1/share', 32],
    ['appliance secret key (paillier, 260 bytes)', 'appliance/ap-0123456789abcdef/default/v1', 260],
    ['X_A', 'appliance/ap-0123456789abcdef/default/v1/x', 32],
    ['empty plaintext', 'keyring/a/v4294967295/share', 0],
  ] as const) {
    const plaintext = g.bytes(len);
    const nonce = g.bytes(12);
    const sealed = sealFormula(root, secretName, nonce, plaintext);
    blobs[n] = sealed;
    valid.push({
      name: n,
      op: 'open',
      root: hex(root),
      secretName,
      nonce: hex(nonce),
      plaintext: hex(plaintext),
      sealed: hex(sealed),
    });
  }
  const sealed = blobs['ticket key']!;
  const base = { root: hex(root), secretName: 'keyring/default/v1/ticket' };
  const flip = (i: number) => {
    const b = sealed.slice();
    b[i < 0 ? b.length + i : i]! ^= 1;
    return hex(b);
  };
  const open = (n: string, input: string, error: string, extra: Case = {}) =>
    invalid.push({ name: `open: ${n}`, op: 'open', ...base, ...extra, input, error });
  open('36 bytes', hex(sealed.subarray(0, 36)), 'ERR_DECODE');
  open('empty', '', 'ERR_DECODE');
  open('version 0x02', hex(concat(u8(2), sealed.subarray(1))), 'ERR_UNSUPPORTED_VERSION');
  open('version 0x00', hex(concat(u8(0), sealed.subarray(1))), 'ERR_UNSUPPORTED_VERSION');
  open('sealed under another root key', hex(sealed), 'ERR_SEALED', { root: hex(root2) });
  open('key id byte changed', flip(3), 'ERR_SEALED');
  open('nonce changed', flip(12), 'ERR_DECRYPT');
  open('ciphertext changed', flip(30), 'ERR_DECRYPT');
  open('tag changed', flip(-1), 'ERR_DECRYPT');
  open('cut by one byte', hex(sealed.subarray(0, sealed.length - 1)), 'ERR_DECRYPT');
  open('one byte appended', hex(concat(sealed, u8(0))), 'ERR_DECRYPT');
  open('moved to another name (AAD)', hex(sealed), 'ERR_DECRYPT', {
    secretName: 'keyring/default/v1/share',
  });
  open('moved to another keyring version', hex(sealed), 'ERR_DECRYPT', {
    secretName: 'keyring/default/v2/ticket',
  });
  invalid.push({
    name: 'sealer: all-zero root key',
    op: 'createSealer',
    root: '00'.repeat(32),
    error: 'ERR_PARAMS',
  });
  invalid.push({
    name: 'sealer: 31-byte root key',
    op: 'createSealer',
    root: hex(root.subarray(0, 31)),
    error: 'ERR_INVALID_ARGUMENT',
  });

  valid.push({
    name: 'BLINDFOLD_ROOT_KEY text',
    op: 'loadRootKeyEnv',
    text: toB64u(root),
    root: hex(root),
  });
  valid.push({
    name: 'BLINDFOLD_ROOT_KEY text with surrounding whitespace',
    op: 'loadRootKeyEnv',
    text: ` ${toB64u(root)}\n`,
    root: hex(root),
  });
  const env = (n: string, text: string, error: string) =>
    invalid.push({ name: `BLINDFOLD_ROOT_KEY: ${n}`, op: 'loadRootKeyEnv', text, error });
  env('padded', `${toB64u(root)}=`, 'ERR_DECODE');
  env('31 bytes', toB64u(root.subarray(0, 31)), 'ERR_DECODE');
  env('33 bytes', toB64u(concat(root, u8(1))), 'ERR_DECODE');
  env(
    'standard base64 alphabet',
    Buffer.from(Uint8Array.of(0xfb, 0xff, ...root.subarray(2)))
      .toString('base64')
      .replace(/=+$/, ''),
    'ERR_DECODE',
  );
  env('all zero', toB64u(new Uint8Array(32)), 'ERR_PARAMS');

  // Operator shares (SPEC.md §9, source 3).
  const shareSeed = g.seed();
  const shares = splitRootKey(root, 2, 3, seededRng(shareSeed));
  const keyId = hex(rootKeyId(root));
  valid.push({
    name: 'operator shares 2 of 3',
    op: 'splitRootKey',
    root: hex(root),
    threshold: 2,
    count: 3,
    rngSeed: hex(shareSeed),
    shares,
  });
  for (const subset of [
    [0, 1],
    [2, 0],
    [1, 2],
    [0, 1, 2],
  ]) {
    valid.push({
      name: `combine shares ${subset.map((i) => i + 1).join(', ')}`,
      op: 'rootKeyFromShares',
      shares: subset.map((i) => shares[i]!),
      keyId,
      root: hex(root),
    });
  }
  const s3Seed = g.seed();
  const shares35 = splitRootKey(root2, 3, 5, seededRng(s3Seed));
  valid.push({
    name: 'operator shares 3 of 5',
    op: 'splitRootKey',
    root: hex(root2),
    threshold: 3,
    count: 5,
    rngSeed: hex(s3Seed),
    shares: shares35,
  });
  valid.push({
    name: 'combine shares 5, 1, 3 of 5',
    op: 'rootKeyFromShares',
    shares: [shares35[4]!, shares35[0]!, shares35[2]!],
    keyId: hex(rootKeyId(root2)),
    root: hex(root2),
  });
  const raw = (t: string) => Uint8Array.from(Buffer.from(t.slice('bf-share-'.length), 'base64url'));
  const text = (b: Uint8Array) => `bf-share-${toB64u(b)}`;
  const s1 = raw(shares[0]!);
  const mutShare = (f: (b: Uint8Array) => void) => {
    const b = s1.slice();
    f(b);
    return text(b);
  };
  const comb = (n: string, list: string[], error: string, kid: string | null = keyId) =>
    invalid.push({
      name: `shares: ${n}`,
      op: 'rootKeyFromShares',
      shares: list,
      keyId: kid,
      error,
    });
  comb('one share of a 2-of-3 split', [shares[0]!], 'ERR_INVALID_ARGUMENT');
  comb('the same share twice', [shares[0]!, shares[0]!], 'ERR_INVALID_ARGUMENT');
  comb(
    'share version 0x02',
    [
      mutShare((b) => {
        b[0] = 2;
      }),
      shares[1]!,
    ],
    'ERR_UNSUPPORTED_VERSION',
  );
  comb(
    'threshold byte 1',
    [
      mutShare((b) => {
        b[1] = 1;
      }),
      shares[1]!,
    ],
    'ERR_DECODE',
  );
  comb(
    'x = 0',
    [
      mutShare((b) => {
        b[2] = 0;
      }),
      shares[1]!,
    ],
    'ERR_DECODE',
  );
  comb('3 bytes, no y', [text(s1.subarray(0, 3)), shares[1]!], 'ERR_DECODE');
  comb('missing "bf-share-" prefix', [toB64u(s1), shares[1]!], 'ERR_DECODE');
  comb('padded base64url', [`${shares[0]!}=`, shares[1]!], 'ERR_DECODE');
  comb(
    'a third share off the polynomial',
    [
      shares[0]!,
      shares[1]!,
      (() => {
        const b = raw(shares[2]!);
        b[5]! ^= 1;
        return text(b);
      })(),
    ],
    'ERR_INVALID_ARGUMENT',
  );
  comb(
    'a y byte changed: another key, refused by the key id',
    [
      mutShare((b) => {
        b[10]! ^= 1;
      }),
      shares[1]!,
    ],
    'ERR_SEALED',
  );
  comb('shares of another root key', [shares35[0]!, shares35[1]!, shares35[2]!], 'ERR_SEALED');
  comb(
    'shares of a 31-byte secret',
    (() => {
      const b0 = raw(shares[0]!);
      const b1 = raw(shares[1]!);
      return [text(b0.subarray(0, 34)), text(b1.subarray(0, 34))];
    })(),
    'ERR_DECODE',
    null,
  );
  return {
    description:
      'Sealed manager secrets: root key id, sealed blobs opened by Sealer.open (built by the formula of SPEC.md §9 with seeded nonces, because Sealer.seal draws its nonce from node:crypto and is not deterministic), root keys from BLINDFOLD_ROOT_KEY text, and operator shares (Shamir over GF(2^8), seeded coefficients) with rootKeyFromShares. `keyId: null` means no expected key id is given.',
    spec: 'SPEC.md §9',
    seed: hex(fileSeed(name)),
    notes: [
      'Sealer.seal is not covered by byte vectors (random nonce); the test checks seal → open round trips instead.',
    ],
    valid,
    invalid,
  };
}

// ---------------------------------------------------------------------------------------------
// audit.json (SPEC.md §8)

function auditFile(): VectorFile {
  const name = 'audit.json';
  const g = new Stream(name);
  const valid: Case[] = [];
  const invalid: Case[] = [];
  const ap = `ap-${hex(g.bytes(8))}`;
  const item = hex(g.bytes(16));
  const t0 = NOW_MS;
  const fields: Omit<ChainFields, 'seq'>[] = [
    {
      ts: t0,
      actor: 'operator',
      action: 'keyring.create',
      keyring: 'default',
      item: null,
      keyVersion: 1,
      outcome: 'ok',
      code: null,
      requestId: 'req-1',
    },
    {
      ts: t0 + 1,
      actor: 'operator',
      action: 'enrollment.create',
      keyring: null,
      item: null,
      keyVersion: null,
      outcome: 'ok',
      code: null,
      requestId: 'req-2',
    },
    {
      ts: t0 + 2000,
      actor: ap,
      action: 'appliance.enroll',
      keyring: null,
      item: null,
      keyVersion: null,
      outcome: 'ok',
      code: null,
      requestId: null,
    },
    {
      ts: t0 + 2500,
      actor: ap,
      action: 'appliance.key',
      keyring: 'default',
      item: null,
      keyVersion: 1,
      outcome: 'ok',
      code: null,
      requestId: 'req-4',
    },
    {
      ts: t0 + 3000,
      actor: ap,
      action: 'item.create',
      keyring: 'default',
      item,
      keyVersion: 1,
      outcome: 'ok',
      code: null,
      requestId: 'req-5',
    },
    {
      ts: t0 + 4000,
      actor: ap,
      action: 'item.recover',
      keyring: 'default',
      item,
      keyVersion: 1,
      outcome: 'refused',
      code: 'ERR_TICKET_INVALID',
      requestId: 'req-6',
    },
    {
      ts: t0 + 5000,
      actor: 'opérateur "ops"\u0001',
      action: 'keyring.disable',
      keyring: 'default',
      item: null,
      keyVersion: 4294967295,
      outcome: 'error',
      code: 'ERR_INTERNAL',
      requestId: 'req-7',
    },
  ];
  type Entry = ChainFields & { prevHash: string; hash: string };
  const chain: Entry[] = [];
  let prev = GENESIS_HASH;
  for (const [i, f] of fields.entries()) {
    const e = { seq: i + 1, ...f };
    const h = chainHash(prev, e);
    chain.push({ ...e, prevHash: prev, hash: h });
    prev = h;
  }
  const entriesJson = (es: Entry[]) => es.map((e) => ({ ...e }));
  valid.push({
    name: 'chain of 7 entries from genesis',
    op: 'chain',
    prevHash: GENESIS_HASH,
    firstSeq: 1,
    entries: chain.map((e) => ({ ...e, canonical: hex(canonicalEntry(e)) })),
  });
  valid.push({
    name: 'suffix from entry 4, verified against the remembered hash of entry 3',
    op: 'verifyChain',
    prevHash: chain[2]!.hash,
    firstSeq: 4,
    entries: entriesJson(chain.slice(3)),
    checked: 4,
  });
  // The chain is unkeyed (SPEC.md §8): a rewrite of every hash from an edit on verifies on its own.
  const rewritten: Entry[] = [];
  prev = GENESIS_HASH;
  for (const e of chain) {
    const f = e.seq === 5 ? { ...e, outcome: 'refused' } : e;
    const h = chainHash(prev, f);
    rewritten.push({ ...f, prevHash: prev, hash: h });
    prev = h;
  }
  valid.push({
    name: 'a whole rewritten chain verifies (unkeyed, SPEC.md §8)',
    op: 'verifyChain',
    prevHash: GENESIS_HASH,
    firstSeq: 1,
    entries: entriesJson(rewritten),
    checked: 7,
  });
  const broken = (
    n: string,
    es: Entry[],
    brokenAt: number,
    prevHash = GENESIS_HASH,
    firstSeq = 1,
  ) =>
    invalid.push({
      name: n,
      op: 'verifyChain',
      prevHash,
      firstSeq,
      entries: entriesJson(es),
      error: null,
      brokenAt,
    });
  broken(
    'outcome of entry 3 edited',
    chain.map((e) => (e.seq === 3 ? { ...e, outcome: 'refused' } : e)),
    3,
  );
  broken(
    'entry 4 removed (sequence gap)',
    chain.filter((e) => e.seq !== 4),
    5,
  );
  broken('entries 5 and 6 swapped', [...chain.slice(0, 4), chain[5]!, chain[4]!, chain[6]!], 6);
  broken(
    'hash of entry 2 edited',
    chain.map((e) => (e.seq === 2 ? { ...e, hash: `${'0'.repeat(63)}1` } : e)),
    2,
  );
  broken(
    'entry 5 edited and its hash recomputed: entry 6 breaks',
    chain.map((e) =>
      e.seq === 5
        ? { ...e, actor: 'operator', hash: chainHash(e.prevHash, { ...e, actor: 'operator' }) }
        : e,
    ),
    6,
  );
  broken('entry 1 deleted', chain.slice(1), 2);
  broken('suffix checked against the wrong remembered hash', chain.slice(3), 4, chain[1]!.hash, 4);
  broken(
    'requestId null changed to "" (canonical JSON differs)',
    chain.map((e) => (e.seq === 3 ? { ...e, requestId: '' } : e)),
    3,
  );
  broken(
    'keyVersion 1 changed to "1" (canonical JSON differs)',
    chain.map((e) => (e.seq === 4 ? { ...e, keyVersion: '1' as unknown as number } : e)),
    4,
  );
  return {
    description:
      'The audit hash chain: canonical entry bytes (JSON array of the ten fields, JSON.stringify), hash_n = SHA-256("blindfold/v1/audit" ‖ 0 ‖ bytes(prevHash) ‖ canonical), and verifyChain. verifyChain reports instead of throwing: invalid cases have `error: null` and the `brokenAt` sequence number the verifier must name.',
    spec: 'SPEC.md §8',
    seed: hex(fileSeed(name)),
    valid,
    invalid,
  };
}

// ---------------------------------------------------------------------------------------------

export const GENERATORS: Record<string, () => VectorFile | Promise<VectorFile>> = {
  'derive.json': deriveFile,
  'scheme-ec-elgamal.json': () => schemeFile('ec-elgamal'),
  'scheme-paillier.json': () => schemeFile('paillier'),
  'scheme-rsa.json': () => schemeFile('rsa'),
  'scheme-gm.json': () => schemeFile('gm'),
  'split-operators.json': splitOperatorsFile,
  'item.json': itemFile,
  'ticket.json': ticketFile,
  'mode-split.json': modeSplitFile,
  'mode-hom2.json': modeHom2File,
  'mode-hom2-opt.json': modeHom2OptFile,
  'mode-threshold.json': modeThresholdFile,
  'file.json': fileFile,
  'seal.json': sealFile,
  'audit.json': auditFile,
};

export function render(v: VectorFile): string {
  return `${JSON.stringify(v, null, 2)}\n`;
}

export const VECTOR_DIR = fileURLToPath(new URL('./', import.meta.url));

async function main(): Promise<void> {
  mkdirSync(VECTOR_DIR, { recursive: true });
  const only = process.argv.slice(2);
  let total = 0;
  for (const [file, gen] of Object.entries(GENERATORS)) {
    if (only.length > 0 && !only.includes(file)) continue;
    const t = performance.now();
    const text = render(await gen());
    writeFileSync(new URL(file, import.meta.url), text);
    total += text.length;
    console.log(
      `${file.padEnd(26)} ${String(text.length).padStart(9)} bytes  ${(performance.now() - t).toFixed(0).padStart(6)} ms`,
    );
  }
  console.log(`${'total'.padEnd(26)} ${String(total).padStart(9)} bytes`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
