/**
 * Blindfold's own test vectors (SPEC.md §1.4), checked in both directions: every valid case is
 * recomputed by the code in src/ (decode → operation → encode, replaying the recorded seededRng
 * streams) and must give exactly the recorded bytes; every invalid case must be refused with exactly
 * the recorded error code. A last test regenerates the cheap files in memory and compares them byte
 * for byte with the files on disk.
 *
 * The vectors are written by test/vectors/generate.ts (`npm run vectors`); its header comment
 * explains the JSON conventions (hex bytes, `ref` and `concat` inputs, `<field>Sha256` digests).
 */
import assert from 'node:assert/strict';
import { createPublicKey, verify as verifySignature } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { p256 } from '@noble/curves/nist.js';
import {
  decryptRange,
  decryptStream,
  encryptStream,
  nodeAesGcm,
  rewrapHeader,
} from '../src/appliance/stream.ts';
import {
  type ChainFields,
  canonicalEntry,
  chainHash,
  linkEntries,
  verifyChain,
} from '../src/core/audit.ts';
import { randomBelow, randomUnit } from '../src/core/bigint.ts';
import {
  bigToBytes,
  bytesToBig,
  concat,
  fromB64u,
  fromHex,
  toB64u,
  toHex,
} from '../src/core/bytes.ts';
import { ERROR_CODES, isBlindfoldError } from '../src/core/errors.ts';
import {
  chunkNonce,
  decodeHeader,
  type HeaderFields,
  openHeader,
  payloadKey,
  plainSizeFromCiphertext,
  sealHeader,
} from '../src/core/format.ts';
import { decodeScalar, randomPoint, randomScalar } from '../src/core/group.ts';
import { expandMessageXmd, hashToGroup, hashToScalar } from '../src/core/h2c.ts';
import { deriveKey, sha256 } from '../src/core/hash.ts';
import { getSplitOperator, type SplitOperatorId, splitOperators } from '../src/core/operators.ts';
import {
  homMode,
  type ItemRef,
  itemContext,
  itemKek,
  MODE_CODES,
  shareSeed,
  splitMode,
} from '../src/core/protocol.ts';
import { seededRng } from '../src/core/random.ts';
import { getScheme, schemes } from '../src/core/schemes/index.ts';
import { SCHEME_CODES, type SchemeId } from '../src/core/schemes/scheme.ts';
import { issueTicket, verifyTicket } from '../src/core/ticket.ts';
import { keyStatement, ticketBinding } from '../src/manager/manager.ts';
import {
  createSealer,
  loadRootKey,
  rootKeyFromShares,
  rootKeyId,
  splitRootKey,
} from '../src/manager/seal.ts';
import { nodeSha256 } from '../src/platform/node-hash.ts';
import { GENERATORS, render } from './vectors/generate.ts';

// biome-ignore lint/suspicious/noExplicitAny: vectors are untyped JSON, schemes are generic
type Any = any;
type Case = Record<string, Any>;
interface VectorFile {
  description: string;
  spec: string;
  seed: string;
  valid: Case[];
  invalid: Case[];
}

/** SPEC.md §1.4: the files the generator must produce. */
const FILES = [
  'derive.json',
  'scheme-ec-elgamal.json',
  'scheme-paillier.json',
  'scheme-rsa.json',
  'scheme-gm.json',
  'split-operators.json',
  'item.json',
  'ticket.json',
  'mode-split.json',
  'mode-hom2.json',
  'mode-hom2-opt.json',
  'file.json',
  'seal.json',
  'audit.json',
];

/**
 * Cases where src/ does not (yet) produce the code the vectors (SPEC.md) require. They run as
 * `todo` so that the suite stays green while the finding is open; remove an entry once src/ or
 * SPEC.md is fixed. Key: "<file>: <case name>".
 */
const KNOWN_DEVIATIONS: Record<string, string> = {};

const cache = new Map<string, VectorFile>();
function load(name: string): VectorFile {
  let v = cache.get(name);
  if (!v) {
    v = JSON.parse(
      readFileSync(new URL(`./vectors/${name}`, import.meta.url), 'utf8'),
    ) as VectorFile;
    cache.set(name, v);
  }
  return v;
}

const h = (s: string): Uint8Array => fromHex(s);
const hex = toHex;

function eqHex(actual: Uint8Array, expected: string, what = 'bytes'): void {
  assert.equal(hex(actual), expected, what);
}

/** Compares bytes with `c[field]`, or their SHA-256 with `c[field + "Sha256"]`. */
function expectField(c: Case, field: string, actual: Uint8Array): void {
  if (typeof c[field] === 'string') {
    eqHex(actual, c[field], field);
    return;
  }
  const digest = c[`${field}Sha256`];
  assert.equal(typeof digest, 'string', `case has neither ${field} nor ${field}Sha256`);
  eqHex(sha256(actual), digest, `${field}Sha256`);
}

/** A byte field: hex, {ref, field}, or {concat: [...]}; `lookup` supplies digest-only fields. */
function resolve(
  v: VectorFile,
  x: Any,
  lookup?: (ref: string, field: string) => Uint8Array | undefined,
): Uint8Array {
  if (typeof x === 'string') return h(x);
  if (x && typeof x.ref === 'string' && !('start' in x) && !('end' in x) && !('concat' in x)) {
    return fieldOf(v, x.ref, x.field, lookup);
  }
  if (x && Array.isArray(x.concat)) {
    return concat(
      ...x.concat.map((p: Any) => {
        if (typeof p.hex === 'string') return h(p.hex);
        const b = fieldOf(v, p.ref, p.field, lookup);
        return b.subarray(p.start ?? 0, p.end ?? b.length);
      }),
    );
  }
  throw new Error(`unknown byte field ${JSON.stringify(x)?.slice(0, 80)}`);
}

function fieldOf(
  v: VectorFile,
  ref: string,
  field: string,
  lookup?: (ref: string, field: string) => Uint8Array | undefined,
): Uint8Array {
  const fromLookup = lookup?.(ref, field);
  if (fromLookup) return fromLookup;
  const c = v.valid.find((x) => x.name === ref);
  assert.ok(c, `no valid case ${ref}`);
  return resolve(v, c[field], lookup);
}

/** The error code f throws (a non-Blindfold error or no error is reported as such). */
function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return isBlindfoldError(e)
      ? e.code
      : `not a BlindfoldError: ${(e as Error)?.name}: ${(e as Error)?.message}`;
  }
  return 'no error';
}

async function codeOfAsync(f: () => Promise<unknown>): Promise<string> {
  try {
    await f();
  } catch (e) {
    return isBlindfoldError(e)
      ? e.code
      : `not a BlindfoldError: ${(e as Error)?.name}: ${(e as Error)?.message}`;
  }
  return 'no error';
}

/** One node:test per case; cases listed in KNOWN_DEVIATIONS run as todo. */
function cases(file: string, list: Case[], run: (c: Case) => void | Promise<void>): void {
  for (const c of list) {
    const todo = KNOWN_DEVIATIONS[`${file}: ${c.name}`];
    test(`${c.name}${c.error ? ` → ${c.error}` : ''}`, todo ? { todo } : {}, () => run(c));
  }
}

function invalidCases(file: string, run: (c: Case) => string | Promise<string>): void {
  cases(file, load(file).invalid, async (c) => {
    assert.equal(await run(c), c.error, `${file}: ${c.name}`);
  });
}

function refOf(r: Case): ItemRef {
  return {
    keyring: r.keyring,
    itemId: h(r.itemId),
    masterVersion: r.masterVersion,
    managerVersion: r.managerVersion,
    entropy: h(r.entropy),
  };
}

// ---------------------------------------------------------------------------------------------

test('every file of SPEC.md §1.4 exists, has the common shape and only known error codes', () => {
  let total = 0;
  for (const f of FILES) {
    const text = readFileSync(new URL(`./vectors/${f}`, import.meta.url), 'utf8');
    total += text.length;
    const v = load(f);
    assert.deepEqual(
      Object.keys(v).filter((k) => k !== 'notes'),
      ['description', 'spec', 'seed', 'valid', 'invalid'],
      f,
    );
    assert.match(v.spec, /^SPEC\.md §/, f);
    assert.ok(v.valid.length > 0 && v.invalid.length > 0, f);
    const names = new Set<string>();
    for (const c of [...v.valid, ...v.invalid]) {
      assert.equal(typeof c.name, 'string', f);
      assert.ok(!names.has(`${c.error ? 'i' : 'v'}:${c.name}`), `${f}: duplicate case ${c.name}`);
      names.add(`${c.error ? 'i' : 'v'}:${c.name}`);
    }
    for (const c of v.invalid) {
      if (c.error === null) assert.equal(typeof c.brokenAt, 'number', `${f}: ${c.name}`);
      else
        assert.ok(
          (ERROR_CODES as readonly string[]).includes(c.error),
          `${f}: ${c.name}: ${c.error}`,
        );
    }
    eqHex(sha256(new TextEncoder().encode(`blindfold/v1/vectors/${f}`)), v.seed, `${f} seed`);
  }
  assert.ok(total < 3_000_000, `vectors total ${total} bytes`);
});

// ---------------------------------------------------------------------------------------------

describe('derive.json (SPEC.md §2.1, §2.3, §2.5)', () => {
  const F = 'derive.json';
  cases(F, load(F).valid, (c) => {
    switch (c.op) {
      case 'deriveKey':
        return eqHex(deriveKey(h(c.ikm), c.label, h(c.context), c.length, h(c.salt)), c.output);
      case 'seededRng': {
        const rng = seededRng(h(c.seed));
        for (const [i, n] of (c.reads as number[]).entries())
          eqHex(rng(n), c.outputs[i], `read ${i}`);
        // The stream does not depend on how it is cut into reads.
        eqHex(
          seededRng(h(c.seed))(c.reads.reduce((a: number, b: number) => a + b, 0)),
          c.outputs.join(''),
        );
        return;
      }
      case 'expandMessageXmd':
        return eqHex(expandMessageXmd(h(c.msg), c.dst, c.length), c.output);
      case 'hashToGroup':
        return eqHex(hashToGroup(h(c.msg), c.dst), c.output);
      case 'hashToScalar':
        return eqHex(hashToScalar(h(c.msg), c.dst), c.output);
      case 'randomScalar':
        return eqHex(randomScalar(seededRng(h(c.rngSeed))), c.output);
      case 'randomPoint':
        return eqHex(randomPoint(seededRng(h(c.rngSeed))), c.output);
      case 'randomBelow':
      case 'randomUnit': {
        const n = bytesToBig(h(c.n));
        const rng = seededRng(h(c.rngSeed));
        const f = c.op === 'randomBelow' ? randomBelow : randomUnit;
        for (const out of c.outputs) eqHex(bigToBytes(f(n, rng), h(c.n).length), out);
        return;
      }
      case 'base64url':
        assert.equal(toB64u(h(c.bytes)), c.text);
        return eqHex(fromB64u(c.text), c.bytes);
      default:
        assert.fail(`unknown op ${c.op}`);
    }
  });
  invalidCases(F, (c) => {
    switch (c.op) {
      case 'fromB64u':
        return codeOf(() => fromB64u(c.text));
      case 'expandMessageXmd':
        return codeOf(() => expandMessageXmd(h(c.msg), c.dst, c.length));
      case 'deriveKey':
        return codeOf(() => deriveKey(h(c.ikm), c.label, h(c.context), c.length, h(c.salt)));
      default:
        return `unknown op ${c.op}`;
    }
  });
});

// ---------------------------------------------------------------------------------------------

function decodeBlind(id: SchemeId, b: Uint8Array): Any {
  if (id === 'ec-elgamal') return decodeScalar(b, 'blind');
  if (id === 'gm') return b;
  return { z: bytesToBig(b) };
}

function encodeBlind(id: SchemeId, pk: Any, b: Any): Uint8Array {
  if (id === 'ec-elgamal' || id === 'gm') return b;
  return bigToBytes(b.z, pk.nBytes);
}

interface Keys {
  pk: Any;
  sk: Any;
}

const schemeKeysCache = new Map<string, Map<string, Keys>>();
/** The key pairs of scheme-<id>.json, decoded (and checked by the keygen cases below). */
function schemeKeys(id: SchemeId): Map<string, Keys> {
  let m = schemeKeysCache.get(id);
  if (!m) {
    const s: Any = schemes[id];
    m = new Map();
    for (const c of load(`scheme-${id}.json`).valid.filter((x) => x.op === 'generateKeyPair')) {
      m.set(c.name, {
        pk: s.decodePublicKey(h(c.publicKey)),
        sk: s.decodeSecretKey(h(c.secretKey)),
      });
    }
    schemeKeysCache.set(id, m);
  }
  return m;
}

for (const id of ['ec-elgamal', 'paillier', 'rsa', 'gm'] as SchemeId[]) {
  const F = `scheme-${id}.json`;
  describe(`${F} (SPEC.md §3)`, () => {
    const s: Any = schemes[id];
    const v = load(F);
    const keys = () => schemeKeys(id);
    const ct = (pk: Any, x: Any) => s.decodeCiphertext(pk, resolve(v, x));
    const pt = (pk: Any, x: string) => s.decodePlaintext(pk, h(x));
    cases(F, v.valid, (c) => {
      const k = keys().get(c.key ?? 'key-1')!;
      const pk = k?.pk;
      const sk = k?.sk;
      switch (c.op) {
        case 'generateKeyPair': {
          const kp = keys().get(c.name)!;
          eqHex(s.encodePublicKey(kp.pk), c.publicKey);
          eqHex(s.encodeSecretKey(kp.sk), c.secretKey);
          eqHex(s.encodePublicKey(s.publicKeyOf(kp.sk)), c.publicKey, 'publicKeyOf');
          eqHex(s.fingerprint(kp.pk), c.fingerprint);
          // Key generation replays from its seed (pure BigInt primes for the integer schemes:
          // a fraction of a second per key, so only key-1 of each scheme is regenerated).
          if (c.name === 'key-1' || id === 'ec-elgamal') {
            const opts = c.bits
              ? { bits: c.bits, rng: seededRng(h(c.rngSeed)) }
              : { rng: seededRng(h(c.rngSeed)) };
            const again = s.generateKeyPair(opts);
            eqHex(s.encodeSecretKey(again.secretKey), c.secretKey, 'keygen replay');
          }
          return;
        }
        case 'plaintextFromSeed':
          eqHex(s.encodePlaintext(pk, pt(pk, c.plaintext)), c.plaintext, 'decode/encode');
          return eqHex(s.encodePlaintext(pk, s.plaintextFromSeed(pk, h(c.seed))), c.plaintext);
        case 'randomPlaintext':
          return eqHex(
            s.encodePlaintext(pk, s.randomPlaintext(pk, seededRng(h(c.rngSeed)))),
            c.plaintext,
          );
        case 'shareFromSeed':
          eqHex(s.encodeShare(pk, s.decodeShare(pk, h(c.share))), c.share, 'decode/encode');
          return eqHex(s.encodeShare(pk, s.shareFromSeed(pk, h(c.seed))), c.share);
        case 'randomShare':
          return eqHex(s.encodeShare(pk, s.randomShare(pk, seededRng(h(c.rngSeed)))), c.share);
        case 'encrypt': {
          const out = s.encrypt(pk, pt(pk, c.plaintext), seededRng(h(c.rngSeed)));
          expectField(c, 'ciphertext', s.encodeCiphertext(pk, out));
          const decoded = ct(pk, c.ciphertext);
          eqHex(s.encodeCiphertext(pk, decoded), c.ciphertext, 'decode/encode');
          return eqHex(s.encodePlaintext(pk, s.decrypt(sk, decoded)), c.plaintext, 'decrypt');
        }
        case 'combine':
        case 'uncombine': {
          const out = s[c.op](pk, ct(pk, c.a), ct(pk, c.b));
          expectField(c, 'ciphertext', s.encodeCiphertext(pk, out));
          return eqHex(s.encodePlaintext(pk, s.decrypt(sk, out)), c.plaintext, 'decrypt');
        }
        case 'combinePlain': {
          const out = s.combinePlain(pk, ct(pk, c.ciphertext), pt(pk, c.b));
          expectField(c, 'result', s.encodeCiphertext(pk, out));
          return eqHex(s.encodePlaintext(pk, s.decrypt(sk, out)), c.plaintext, 'decrypt');
        }
        case 'rerandomize': {
          const input = ct(pk, c.ciphertext);
          const out = s.rerandomize(pk, input, seededRng(h(c.rngSeed)));
          const enc = s.encodeCiphertext(pk, out);
          expectField(c, 'result', enc);
          assert.equal(
            hex(enc) === hex(s.encodeCiphertext(pk, input)),
            s.deterministic,
            'changes iff not deterministic',
          );
          return assert.equal(
            hex(s.encodePlaintext(pk, s.decrypt(sk, out))),
            hex(s.encodePlaintext(pk, s.decrypt(sk, input))),
          );
        }
        case 'sampleUnknown': {
          const out = s.sampleUnknown(pk, seededRng(h(c.rngSeed)));
          expectField(c, 'ciphertext', s.encodeCiphertext(pk, out));
          return eqHex(s.encodePlaintext(pk, s.decrypt(sk, out)), c.plaintext, 'decrypt');
        }
        case 'op':
          return eqHex(s.encodePlaintext(pk, s.op(pk, pt(pk, c.a), pt(pk, c.b))), c.result);
        case 'inv':
          return eqHex(s.encodePlaintext(pk, s.inv(pk, pt(pk, c.a))), c.result);
        case 'identity':
          return eqHex(s.encodePlaintext(pk, s.identity(pk)), c.plaintext);
        case 'applyShare':
          return eqHex(
            s.encodePlaintext(
              pk,
              s.applyShare(pk, pt(pk, c.plaintext), s.decodeShare(pk, h(c.share))),
            ),
            c.result,
          );
        case 'blind': {
          const b = s.blind(pk, ct(pk, c.ciphertext), seededRng(h(c.rngSeed)));
          expectField(c, 'blinded', s.encodeCiphertext(pk, b.ciphertext));
          eqHex(encodeBlind(id, pk, b.blind), c.blind, 'blind');
          return eqHex(
            s.encodePlaintext(pk, s.decrypt(sk, b.ciphertext)),
            c.blindedPlaintext,
            'decrypt',
          );
        }
        case 'unblind':
          return eqHex(
            s.encodePlaintext(pk, s.unblind(pk, decodeBlind(id, h(c.blind)), pt(pk, c.y))),
            c.result,
          );
        case 'secretBytes':
          // SPEC.md §3.1: the same bytes under every key pair of the scheme.
          for (const name of c.keys) {
            const kk = keys().get(name)!;
            eqHex(
              s.secretBytes(kk.pk, s.decodePlaintext(kk.pk, h(c.plaintext))),
              c.secretBytes,
              name,
            );
          }
          return;
        default:
          assert.fail(`unknown op ${c.op}`);
      }
    });
    invalidCases(F, (c) => {
      const pk = keys().get(c.key ?? 'key-1')!.pk;
      const sk = keys().get(c.key ?? 'key-1')!.sk;
      const input = resolve(v, c.input);
      if (c.inputSha256) eqHex(sha256(input), c.inputSha256, 'reconstructed input');
      switch (c.op) {
        case 'decodePublicKey':
          return codeOf(() => s.decodePublicKey(input));
        case 'decodeSecretKey':
          return codeOf(() => s.decodeSecretKey(input));
        case 'decodeCiphertext':
          return codeOf(() => s.decodeCiphertext(pk, input));
        case 'decodePlaintext':
          return codeOf(() => s.decodePlaintext(pk, input));
        case 'decodeShare':
          return codeOf(() => s.decodeShare(pk, input));
        case 'plaintextFromSeed':
          return codeOf(() => s.plaintextFromSeed(pk, input));
        case 'shareFromSeed':
          return codeOf(() => s.shareFromSeed(pk, input));
        case 'decrypt': {
          // The ciphertext as the integers it holds, without the decoder's checks.
          const raw =
            id === 'gm'
              ? Array.from({ length: 256 }, (_, i) =>
                  bytesToBig(input.subarray(i * pk.nBytes, (i + 1) * pk.nBytes)),
                )
              : bytesToBig(input);
          return codeOf(() => s.decrypt(sk, raw));
        }
        case 'secretBytes':
          return codeOf(() => s.secretBytes(pk, s.decodePlaintext(pk, input)));
        default:
          return `unknown op ${c.op}`;
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------

describe('split-operators.json (SPEC.md §3.7)', () => {
  const F = 'split-operators.json';
  cases(F, load(F).valid, (c) => {
    const op = splitOperators[c.operator as SplitOperatorId];
    switch (c.op) {
      case 'fromSeed':
        return eqHex(op.fromSeed(h(c.seed)), c.element);
      case 'random':
        return eqHex(op.random(seededRng(h(c.rngSeed))), c.element);
      case 'op':
        return eqHex(op.op(h(c.a), h(c.b)), c.result);
      case 'inv':
        return eqHex(op.inv(h(c.a)), c.result);
      default:
        assert.fail(`unknown op ${c.op}`);
    }
  });
  invalidCases(F, (c) => {
    if (c.op === 'getSplitOperator') return codeOf(() => getSplitOperator(c.id));
    if (c.op === 'getScheme') return codeOf(() => getScheme(c.id));
    const op = splitOperators[c.operator as SplitOperatorId];
    const x = h(c.input);
    switch (c.op) {
      case 'check':
        return codeOf(() => op.check(x));
      case 'fromSeed':
        return codeOf(() => op.fromSeed(x));
      case 'op':
        return codeOf(() => op.op(x, h(c.b)));
      case 'inv':
        return codeOf(() => op.inv(x));
      default:
        return `unknown op ${c.op}`;
    }
  });
});

// ---------------------------------------------------------------------------------------------

/** Master and share as item.json writes them: integers of paillier and rsa in 32 bytes. */
function keyFree(id: SchemeId, pk: Any, x: Any, kind: 'plaintext' | 'share'): Uint8Array {
  const s: Any = schemes[id];
  if (id === 'paillier' || id === 'rsa') return bigToBytes(x, 32);
  return kind === 'plaintext' ? s.encodePlaintext(pk, x) : s.encodeShare(pk, x);
}

describe('item.json (SPEC.md §4)', () => {
  const F = 'item.json';
  cases(F, load(F).valid, (c) => {
    const ref = refOf(c.ref);
    switch (c.op) {
      case 'itemContext':
        return eqHex(itemContext(ref), c.context);
      case 'ticketBinding':
        return eqHex(ticketBinding(ref), c.bindingHash);
      case 'shareSeed':
        return eqHex(shareSeed(h(c.shareKey), ref), c.shareSeed);
      case 'itemSecret': {
        const seed = shareSeed(h(c.shareKey), ref);
        if (c.operator) {
          const op = splitOperators[c.operator as SplitOperatorId];
          const M = op.fromSeed(h(c.masterSeed));
          const Q = op.fromSeed(seed);
          eqHex(M, c.master, 'master');
          eqHex(Q, c.share, 'share');
          const S = op.op(M, Q);
          eqHex(S, c.secretBytes, 'secretBytes');
          return eqHex(itemKek(S, ref), c.kek, 'kek');
        }
        const id = c.scheme as SchemeId;
        const s: Any = schemes[id];
        // Every key pair of the scheme derives the same item secret (SPEC.md §3.1, §4.3).
        for (const kp of ['key-1', 'key-2']) {
          const { pk } = schemeKeys(id).get(kp)!;
          const M = s.plaintextFromSeed(pk, h(c.masterSeed));
          const Q = s.shareFromSeed(pk, seed);
          eqHex(keyFree(id, pk, M, 'plaintext'), c.master, `master (${kp})`);
          eqHex(keyFree(id, pk, Q, 'share'), c.share, `share (${kp})`);
          const S = s.secretBytes(pk, s.applyShare(pk, M, Q));
          eqHex(S, c.secretBytes, `secretBytes (${kp})`);
          eqHex(itemKek(S, ref), c.kek, `kek (${kp})`);
        }
        return;
      }
      default:
        assert.fail(`unknown op ${c.op}`);
    }
  });
  invalidCases(F, (c) => {
    const ref = refOf(c.ref);
    if (c.op === 'itemContext') return codeOf(() => itemContext(ref));
    if (c.op === 'shareSeed') return codeOf(() => shareSeed(h(c.shareKey), ref));
    return `unknown op ${c.op}`;
  });
});

// ---------------------------------------------------------------------------------------------

function ticketCheck(c: Case): () => unknown {
  return () =>
    verifyTicket(
      h(c.ticket),
      (ver) => (c.keys[String(ver)] === undefined ? undefined : h(c.keys[String(ver)])),
      {
        keyring: c.expected.keyring,
        itemId: h(c.expected.itemId),
        keyVersion: c.expected.keyVersion,
        bindingHash: h(c.expected.bindingHash),
      },
      c.now,
    );
}

function ticketFields(f: Case) {
  return { ...f, itemId: h(f.itemId), bindingHash: h(f.bindingHash) } as Parameters<
    typeof issueTicket
  >[1];
}

describe('ticket.json (SPEC.md §4.4)', () => {
  const F = 'ticket.json';
  cases(F, load(F).valid, (c) => {
    if (c.op === 'issueTicket')
      return eqHex(issueTicket(h(c.key), ticketFields(c.fields)), c.ticket);
    if (c.op === 'verifyTicket') {
      assert.equal(c.result, 'ok');
      return void ticketCheck(c)();
    }
    assert.fail(`unknown op ${c.op}`);
  });
  invalidCases(F, (c) => {
    if (c.op === 'issueTicket') return codeOf(() => issueTicket(h(c.key), ticketFields(c.fields)));
    if (c.op === 'verifyTicket') return codeOf(ticketCheck(c));
    return `unknown op ${c.op}`;
  });
});

// ---------------------------------------------------------------------------------------------
// Modes (SPEC.md §5)

/** The key statement (SPEC.md §5.1) and its ECDSA signature, as the appliance checks it. */
function checkKeyStatement(c: Case, mode: string, scheme: string, publicKey: Uint8Array): void {
  const r = c.setup.keysResponse;
  assert.deepEqual(
    {
      keyring: r.keyring,
      managerVersion: r.managerVersion,
      mode: r.mode,
      scheme: r.scheme,
      masterVersion: r.masterVersion,
    },
    { keyring: c.keyring, managerVersion: 1, mode, scheme, masterVersion: 1 },
  );
  assert.equal(r.publicKey, toB64u(publicKey));
  const statement = keyStatement(c.applianceId, c.keyring, 1, 1, mode, scheme, publicKey);
  eqHex(statement, c.setup.keyStatement, 'keyStatement');
  const spki = h(c.ca.spki);
  eqHex(
    concat(
      h('3059301306072a8648ce3d020106082a8648ce3d030107034200'),
      p256.getPublicKey(h(c.ca.secretKey), false),
    ),
    c.ca.spki,
    'CA SPKI',
  );
  const sig = fromB64u(r.signature);
  assert.ok(
    verifySignature(
      'sha256',
      statement,
      createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }),
      sig,
    ),
    'signature verifies',
  );
  eqHex(p256.sign(statement, h(c.ca.secretKey), { format: 'der' }), hex(sig), 'RFC 6979 signature');
}

interface Flow {
  /** The appliance's request value and blind for one request (hom2), or nothing. */
  prepare(step: Case): { blinded?: Uint8Array; blind?: Any };
  /** The manager's answer bytes. */
  answer(ref: ItemRef, step: Case, blinded?: Uint8Array): Uint8Array;
  /** The appliance's item secret from the answer. */
  finish(answer: Uint8Array, blind: Any): Uint8Array;
}

/** Item creation and recovery (SPEC.md §5, common), whatever the mode. */
function checkItems(c: Case, flow: Flow): void {
  const shareKey = h(c.manager.shareKey);
  const ticketKey = h(c.manager.ticketKey);
  for (const it of c.items) {
    const ref: ItemRef = {
      keyring: c.keyring,
      itemId: h(it.itemId),
      masterVersion: 1,
      managerVersion: 1,
      entropy: h(it.entropy),
    };
    eqHex(itemContext(ref), it.itemContext, 'itemContext');
    eqHex(ticketBinding(ref), it.bindingHash, 'bindingHash');
    eqHex(shareSeed(shareKey, ref), it.shareSeed, 'shareSeed');
    const now = Math.floor(it.nowMs / 1000);
    const create = it.create;
    const req = create.request;
    assert.deepEqual(
      {
        keyring: req.keyring,
        masterVersion: req.masterVersion,
        managerVersion: req.managerVersion,
        entropy: req.entropy,
      },
      { keyring: c.keyring, masterVersion: 1, managerVersion: 1, entropy: toB64u(ref.entropy) },
    );
    const ttl = req.ttlSeconds ?? 0;
    const ticket = issueTicket(ticketKey, {
      ticketKeyVersion: 1,
      keyring: c.keyring,
      itemId: ref.itemId,
      keyVersion: 1,
      expiresAt: ttl === 0 ? 0 : now + ttl,
      bindingHash: ticketBinding(ref),
    });
    assert.deepEqual(
      {
        itemId: create.response.itemId,
        managerVersion: create.response.managerVersion,
        ticket: create.response.ticket,
      },
      { itemId: toB64u(ref.itemId), managerVersion: 1, ticket: toB64u(ticket) },
    );
    for (const [kind, step] of [
      ['create', create],
      ['recover', it.recover],
    ] as const) {
      const r = step.request;
      if (kind === 'recover') {
        assert.deepEqual(
          {
            keyring: r.keyring,
            itemId: r.itemId,
            masterVersion: r.masterVersion,
            managerVersion: r.managerVersion,
            entropy: r.entropy,
            ticket: r.ticket,
          },
          {
            keyring: c.keyring,
            itemId: toB64u(ref.itemId),
            masterVersion: 1,
            managerVersion: 1,
            entropy: toB64u(ref.entropy),
            ticket: toB64u(ticket),
          },
        );
        // The manager verifies the ticket before anything else (SPEC.md §4.4).
        verifyTicket(
          fromB64u(r.ticket),
          (ver) => (ver === 1 ? ticketKey : undefined),
          {
            keyring: c.keyring,
            itemId: ref.itemId,
            keyVersion: 1,
            bindingHash: ticketBinding(ref),
          },
          now,
        );
      }
      const prep = flow.prepare(step);
      if (prep.blinded) assert.equal(r.blinded, toB64u(prep.blinded), `${kind}: blinded`);
      else assert.equal(r.blinded, undefined, `${kind}: no blinded value in this mode`);
      const answer = flow.answer(
        ref,
        step,
        r.blinded === undefined ? undefined : fromB64u(r.blinded),
      );
      assert.equal(step.response.answer, toB64u(answer), `${kind}: answer`);
      const secret = flow.finish(fromB64u(step.response.answer), prep.blind);
      eqHex(secret, step.itemSecret, `${kind}: item secret`);
      eqHex(itemKek(secret, ref), step.kek, `${kind}: kek`);
    }
    eqHex(
      h(it.create.itemSecret),
      it.recover.itemSecret,
      'recovery gives the item secret of creation',
    );
  }
}

function recoverTicketCode(c: Case, valid: Case[]): string {
  const m = valid.find((x) => x.name === c.case)!;
  const it = m.items[c.item];
  const ticket = fromB64u(m.items[c.ticketOfItem].create.response.ticket);
  const ref: ItemRef = {
    keyring: m.keyring,
    itemId: h(it.itemId),
    masterVersion: 1,
    managerVersion: 1,
    entropy: h(it.entropy),
  };
  return codeOf(() =>
    verifyTicket(
      ticket,
      (ver) => (ver === 1 ? h(m.manager.ticketKey) : undefined),
      { keyring: m.keyring, itemId: ref.itemId, keyVersion: 1, bindingHash: ticketBinding(ref) },
      Math.floor(it.nowMs / 1000),
    ),
  );
}

describe('mode-split.json (SPEC.md §5.1)', () => {
  const F = 'mode-split.json';
  const v = load(F);
  cases(F, v.valid, (c) => {
    const op = splitOperators[c.operator as SplitOperatorId];
    assert.equal(c.modeCode, MODE_CODES.split);
    const M = op.fromSeed(h(c.setup.masterSeed));
    eqHex(M, c.setup.master, 'master');
    const { blindedMaster, r } = splitMode.conceal(op, M, seededRng(h(c.setup.concealRngSeed)));
    eqHex(r, c.setup.r, 'r_A');
    eqHex(blindedMaster, c.setup.concealed, 'M ⊕ r_A');
    assert.deepEqual(c.setup.keysRequest, { managerVersion: 1, r: toB64u(r) });
    assert.deepEqual(c.setup.state, {
      masterVersion: 1,
      managerVersion: 1,
      concealed: toB64u(blindedMaster),
    });
    checkKeyStatement(c, 'split', c.operator, new Uint8Array(0));
    const shareKey = h(c.manager.shareKey);
    checkItems(c, {
      prepare: () => ({}),
      answer: (ref, step) => {
        eqHex(op.fromSeed(shareSeed(shareKey, ref)), step.manager.share, 'Q_i');
        return splitMode.answer(op, h(c.setup.r), shareKey, ref);
      },
      finish: (answer) => splitMode.finish(op, fromB64u(c.setup.state.concealed), answer),
    });
  });
  invalidCases(F, (c) => {
    const m = v.valid.find((x) => x.name === c.case)!;
    const op = splitOperators[m.operator as SplitOperatorId];
    switch (c.op) {
      case 'managerCheckR':
        return codeOf(() => op.check(h(c.input)));
      case 'applianceFinish':
        return codeOf(() => splitMode.finish(op, h(m.setup.concealed), h(c.input)));
      case 'recoverTicket':
        return recoverTicketCode(c, v.valid);
      default:
        return `unknown op ${c.op}`;
    }
  });
});

/** The setup common to hom2 and hom2-opt: keys, master, concealment, key statement. */
function homSetup(c: Case, mode: 'hom2' | 'hom2-opt') {
  const id = c.scheme as SchemeId;
  const s: Any = schemes[id];
  assert.equal(c.modeCode, MODE_CODES[mode]);
  assert.equal(c.schemeCode, SCHEME_CODES[id]);
  const publicKey = h(c.setup.publicKey);
  const pk = s.decodePublicKey(publicKey);
  const sk = s.decodeSecretKey(h(c.setup.secretKey));
  eqHex(s.encodePublicKey(s.publicKeyOf(sk)), c.setup.publicKey, 'key pair');
  if (id === 'ec-elgamal') {
    eqHex(
      s.encodeSecretKey(s.generateKeyPair({ rng: seededRng(h(c.setup.keyRngSeed)) }).secretKey),
      c.setup.secretKey,
      'keygen',
    );
  } else {
    eqHex(
      s.encodeSecretKey(schemeKeys(id).get('key-1')!.sk),
      c.setup.secretKey,
      'key-1 of the scheme file',
    );
  }
  const M = s.plaintextFromSeed(pk, h(c.setup.masterSeed));
  eqHex(s.encodePlaintext(pk, M), c.setup.master, 'master');
  const concealed = homMode.conceal(s, pk, M, seededRng(h(c.setup.concealRngSeed)));
  assert.equal(c.setup.state.concealed, toB64u(s.encodeCiphertext(pk, concealed)), 'Enc(M)');
  assert.equal(c.setup.state.publicKey, toB64u(publicKey));
  assert.deepEqual(c.setup.keysRequest, { managerVersion: 1 });
  checkKeyStatement(c, mode, id, publicKey);
  return { id, s, pk, sk, concealed };
}

function homInvalid(F: string, v: VectorFile, blindOf: (m: Case) => Uint8Array): void {
  invalidCases(F, (c) => {
    const m = v.valid.find((x) => x.name === c.case)!;
    const id = m.scheme as SchemeId;
    const s: Any = schemes[id];
    const pk = s.decodePublicKey(h(m.setup.publicKey));
    switch (c.op) {
      case 'managerDecodeBlinded':
        return codeOf(() => s.decodeCiphertext(pk, h(c.input)));
      case 'applianceFinish':
        return codeOf(() =>
          homMode.finish(s, pk, decodeBlind(id, blindOf(m)), s.decodePlaintext(pk, h(c.input))),
        );
      case 'recoverTicket':
        return recoverTicketCode(c, v.valid);
      default:
        return `unknown op ${c.op}`;
    }
  });
}

describe('mode-hom2.json (SPEC.md §5.2)', () => {
  const F = 'mode-hom2.json';
  const v = load(F);
  cases(F, v.valid, (c) => {
    const { id, s, pk, sk, concealed } = homSetup(c, 'hom2');
    const shareKey = h(c.manager.shareKey);
    checkItems(c, {
      prepare: (step) => {
        const b = homMode.request(s, pk, concealed, seededRng(h(step.appliance.blindRngSeed)));
        eqHex(encodeBlind(id, pk, b.blind), step.appliance.blind, 'blind');
        return { blinded: s.encodeCiphertext(pk, b.ciphertext), blind: b.blind };
      },
      answer: (ref, step, blinded) => {
        const C = s.decodeCiphertext(pk, blinded!);
        eqHex(
          s.encodePlaintext(pk, s.decrypt(sk, C)),
          step.manager.decrypted,
          'what the manager sees',
        );
        eqHex(
          s.encodeShare(pk, s.shareFromSeed(pk, shareSeed(shareKey, ref))),
          step.manager.share,
          'Q_i',
        );
        return s.encodePlaintext(pk, homMode.answer(s, sk, pk, C, shareKey, ref));
      },
      finish: (answer, blind) => homMode.finish(s, pk, blind, s.decodePlaintext(pk, answer)),
    });
  });
  homInvalid(F, v, (m) => h(m.items[m.items.length - 1].recover.appliance.blind));
});

describe('mode-hom2-opt.json (SPEC.md §5.3)', () => {
  const F = 'mode-hom2-opt.json';
  const v = load(F);
  cases(F, v.valid, (c) => {
    const { id, s, pk, sk, concealed } = homSetup(c, 'hom2-opt');
    // β_A is the first draw of seededRng(optSeed) in blind (SPEC.md §5.3), re-derived at start.
    const b = s.blind(pk, concealed, seededRng(h(c.setup.optSeed)));
    eqHex(encodeBlind(id, pk, b.blind), c.setup.betaA, 'β_A');
    const blinded = s.encodeCiphertext(pk, b.ciphertext);
    assert.deepEqual(c.setup.optSetupRequest, { managerVersion: 1, blinded: toB64u(blinded) });
    assert.equal(c.setup.state.optSeed, toB64u(h(c.setup.optSeed)));
    const X = homMode.optSetup(s, sk, s.decodeCiphertext(pk, blinded));
    eqHex(s.encodePlaintext(pk, X), c.setup.xA, 'X_A');
    const shareKey = h(c.manager.shareKey);
    const betaA = s.blind(pk, concealed, seededRng(fromB64u(c.setup.state.optSeed))).blind;
    checkItems(c, {
      prepare: () => ({ blind: betaA }),
      answer: (ref, step) => {
        eqHex(
          s.encodeShare(pk, s.shareFromSeed(pk, shareSeed(shareKey, ref))),
          step.manager.share,
          'Q_i',
        );
        return s.encodePlaintext(
          pk,
          homMode.optAnswer(s, pk, s.decodePlaintext(pk, h(c.setup.xA)), shareKey, ref),
        );
      },
      finish: (answer, blind) => homMode.finish(s, pk, blind, s.decodePlaintext(pk, answer)),
    });
    for (const it of c.items)
      assert.equal(
        it.create.response.answer,
        it.recover.response.answer,
        'the answer repeats per item',
      );
  });
  homInvalid(F, v, (m) => h(m.setup.betaA));
});

// ---------------------------------------------------------------------------------------------
// file.json (SPEC.md §6)

function headerFields(f: Case, fileNonce?: Uint8Array): HeaderFields {
  return {
    scheme: f.scheme,
    mode: f.mode,
    keyring: f.keyring,
    masterVersion: f.masterVersion,
    managerKeyVersion: f.managerKeyVersion,
    itemId: h(f.itemId),
    itemData: h(f.itemData),
    ticket: h(f.ticket),
    fileNonce: fileNonce ?? h(f.fileNonce),
  };
}

function sink(): { out: Writable; bytes: () => Uint8Array } {
  const parts: Buffer[] = [];
  return {
    out: new Writable({
      write(chunk: Buffer, _enc, cb) {
        parts.push(chunk);
        cb();
      },
    }),
    bytes: () => new Uint8Array(Buffer.concat(parts)),
  };
}

/** Splits bytes into pieces of `size` so that streams see several input pieces. */
function piecesOf(b: Uint8Array, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 0; o < b.length; o += size) out.push(Buffer.from(b.subarray(o, o + size)));
  return out.length > 0 ? out : [Buffer.alloc(0)];
}

async function decryptFile(file: Uint8Array, kek: Uint8Array): Promise<Uint8Array> {
  const header = decodeHeader(file);
  const dek = openHeader(nodeAesGcm, header, kek);
  const s = sink();
  await decryptStream(Readable.from(piecesOf(file.subarray(header.headerLength), 40000)), s.out, {
    dek,
    fileNonce: header.fields.fileNonce,
  });
  return s.bytes();
}

interface BuiltFile {
  bytes: Uint8Array;
  plaintext: Uint8Array;
  kek: Uint8Array;
  dek: Uint8Array;
}

const builtFiles = new Map<string, Promise<BuiltFile>>();
/** Replays an encryptFile case: dek, fileNonce, then wrapNonce from one seeded stream. */
function buildFile(c: Case): Promise<BuiltFile> {
  let p = builtFiles.get(c.name);
  if (!p) {
    p = (async () => {
      const rng = seededRng(h(c.rngSeed));
      const dek = rng(32);
      const fileNonce = rng(16);
      const kek = h(c.kek);
      const header = sealHeader(nodeAesGcm, headerFields(c.fields, fileNonce), kek, dek, rng);
      const plaintext = seededRng(h(c.plaintextSeed))(c.plaintextSize);
      const s = sink();
      await encryptStream(Readable.from([Buffer.from(plaintext)]), s.out, {
        header,
        dek,
        fileNonce,
      });
      return { bytes: s.bytes(), plaintext, kek, dek };
    })();
    builtFiles.set(c.name, p);
  }
  return p;
}

describe('file.json (SPEC.md §6)', () => {
  const F = 'file.json';
  const v = load(F);
  const tmp = mkdtempSync(join(tmpdir(), 'blindfold-vectors-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const fileCase = (name: string) =>
    v.valid.find((x) => x.name === name && x.op === 'encryptFile')!;
  /** All encryptFile outputs, rebuilt (the big ones are in the file only as digests). */
  const allFiles = async () => {
    const m = new Map<string, Uint8Array>();
    for (const c of v.valid.filter((x) => x.op === 'encryptFile'))
      m.set(c.name, (await buildFile(c)).bytes);
    return (ref: string, field: string) => (field === 'file' ? m.get(ref) : undefined);
  };
  const onDisk = async (name: string, bytes: Uint8Array) => {
    const path = join(
      tmp,
      `${name.replace(/[^a-z0-9-]/gi, '_')}-${hex(sha256(bytes)).slice(0, 8)}`,
    );
    writeFileSync(path, bytes);
    return path;
  };

  cases(F, v.valid, async (c) => {
    switch (c.op) {
      case 'sealHeader': {
        const fields = headerFields(c.fields);
        const header = sealHeader(nodeAesGcm, fields, h(c.kek), h(c.dek), seededRng(h(c.rngSeed)));
        eqHex(header, c.header);
        assert.equal(header.length, c.headerLength);
        const d = decodeHeader(header);
        assert.deepEqual(d.fields, fields);
        assert.equal(d.headerLength, c.headerLength);
        return eqHex(openHeader(nodeAesGcm, d, h(c.kek)), c.dek, 'unwrapped DEK');
      }
      case 'chunkNonce':
        return eqHex(chunkNonce(c.index, c.last), c.nonce);
      case 'payloadKey':
        return eqHex(payloadKey(h(c.dek), h(c.fileNonce)), c.payloadKey);
      case 'encryptFile': {
        const f = await buildFile(c);
        eqHex(f.dek, c.dek, 'dek');
        if (c.plaintext !== undefined) eqHex(f.plaintext, c.plaintext, 'plaintext');
        else eqHex(sha256(f.plaintext), c.plaintextSha256, 'plaintext');
        expectField(c, 'file', f.bytes);
        assert.equal(f.bytes.length, c.fileSize);
        assert.equal(decodeHeader(f.bytes).headerLength, c.headerLength);
        // The writer's output does not depend on how its input is cut.
        const s = sink();
        const d = decodeHeader(f.bytes);
        await encryptStream(Readable.from(piecesOf(f.plaintext, 1000)), s.out, {
          header: f.bytes.subarray(0, d.headerLength),
          dek: f.dek,
          fileNonce: h(c.fileNonce),
        });
        eqHex(s.bytes(), hex(f.bytes), 'same file from 1000-byte input pieces');
        return eqHex(await decryptFile(f.bytes, f.kek), hex(f.plaintext), 'decrypts');
      }
      case 'rewrap': {
        const base = await buildFile(fileCase(c.file));
        const hl = decodeHeader(base.bytes).headerLength;
        const ch = c.changes;
        const changes = {
          masterVersion: ch.masterVersion,
          managerKeyVersion: ch.managerKeyVersion,
          itemId: h(ch.itemId),
          itemData: h(ch.itemData),
          ticket: h(ch.ticket),
        };
        const newHeader = rewrapHeader(
          base.bytes.subarray(0, hl),
          h(c.oldKek),
          h(c.newKek),
          changes,
          seededRng(h(c.rngSeed)),
        );
        eqHex(newHeader, c.newHeader);
        const moved = concat(newHeader, base.bytes.subarray(hl));
        eqHex(
          await decryptFile(moved, h(c.newKek)),
          hex(base.plaintext),
          'rewrapped file decrypts',
        );
        return assert.equal(
          await codeOfAsync(() => decryptFile(moved, h(c.oldKek))),
          'ERR_DECRYPT',
          'old KEK no longer opens it',
        );
      }
      case 'plainSizeFromCiphertext':
        return assert.equal(plainSizeFromCiphertext(c.fileSize, c.headerLength), c.plainSize);
      case 'decryptRange': {
        const f = await buildFile(fileCase(c.file));
        const header = decodeHeader(f.bytes);
        const dek = openHeader(nodeAesGcm, header, f.kek);
        const out = await decryptRange(await onDisk(c.file, f.bytes), c.start, c.end, dek, header);
        return expectField(c, 'plaintext', out);
      }
      default:
        assert.fail(`unknown op ${c.op}`);
    }
  });

  invalidCases(F, async (c) => {
    switch (c.op) {
      case 'decodeHeader':
        return codeOf(() => decodeHeader(h(c.input)));
      case 'openHeader':
        return codeOf(() => openHeader(nodeAesGcm, decodeHeader(h(c.input)), h(c.kek)));
      case 'plainSizeFromCiphertext':
        return codeOf(() => plainSizeFromCiphertext(c.fileSize, c.headerLength));
      case 'decryptFile': {
        const input = resolve(v, c.input, await allFiles());
        eqHex(sha256(input), c.inputSha256, 'reconstructed input');
        return codeOfAsync(() => decryptFile(input, h(c.kek)));
      }
      case 'decryptRange': {
        const f = await buildFile(fileCase(c.file));
        const bytes = c.input === undefined ? f.bytes : resolve(v, c.input, await allFiles());
        if (c.inputSha256) eqHex(sha256(bytes), c.inputSha256, 'reconstructed input');
        const header = decodeHeader(bytes);
        const dek = openHeader(nodeAesGcm, header, f.kek);
        const path = await onDisk(c.name, bytes);
        return codeOfAsync(() => decryptRange(path, c.start, c.end, dek, header));
      }
      default:
        return `unknown op ${c.op}`;
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('seal.json (SPEC.md §9)', () => {
  const F = 'seal.json';
  cases(F, load(F).valid, (c) => {
    switch (c.op) {
      case 'rootKeyId':
        return eqHex(rootKeyId(h(c.root)), c.keyId);
      case 'open': {
        const sealer = createSealer(h(c.root));
        eqHex(sealer.open(c.secretName, h(c.sealed)), c.plaintext);
        // Sealer.seal is randomized (node:crypto nonce): check its layout and a round trip.
        const again = sealer.seal(c.secretName, h(c.plaintext));
        assert.equal(again.length, h(c.sealed).length);
        eqHex(again.subarray(0, 9), hex(h(c.sealed).subarray(0, 9)), 'version and key id');
        return eqHex(sealer.open(c.secretName, again), c.plaintext, 'seal → open');
      }
      case 'loadRootKeyEnv':
        return eqHex(loadRootKey({ env: c.text }), c.root);
      case 'splitRootKey':
        return assert.deepEqual(
          splitRootKey(h(c.root), c.threshold, c.count, seededRng(h(c.rngSeed))),
          c.shares,
        );
      case 'rootKeyFromShares':
        return eqHex(rootKeyFromShares(c.shares, c.keyId), c.root);
      default:
        assert.fail(`unknown op ${c.op}`);
    }
  });
  invalidCases(F, (c) => {
    switch (c.op) {
      case 'open':
        return codeOf(() => createSealer(h(c.root)).open(c.secretName, h(c.input)));
      case 'createSealer':
        return codeOf(() => createSealer(h(c.root)));
      case 'loadRootKeyEnv':
        return codeOf(() => loadRootKey({ env: c.text }));
      case 'rootKeyFromShares':
        return codeOf(() => rootKeyFromShares(c.shares, c.keyId ?? undefined));
      default:
        return `unknown op ${c.op}`;
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('audit.json (SPEC.md §8)', () => {
  const F = 'audit.json';
  cases(F, load(F).valid, (c) => {
    if (c.op === 'chain') {
      let prev = c.prevHash;
      for (const e of c.entries) {
        eqHex(canonicalEntry(e), e.canonical, `canonical ${e.seq}`);
        assert.equal(e.prevHash, prev, `prevHash ${e.seq}`);
        prev = chainHash(prev, e);
        assert.equal(prev, e.hash, `hash ${e.seq}`);
      }
      // The writers' path (linkEntries), with libsodium's SHA-256 and with OpenSSL's.
      const entries = c.entries as (ChainFields & { prevHash: string; hash: string })[];
      for (const hash of [undefined, nodeSha256]) {
        const linked = linkEntries(
          entries.map(({ seq: _s, prevHash: _p, hash: _h, ...fields }) => fields),
          entries[0]!.seq - 1,
          c.prevHash,
          hash,
        );
        assert.deepEqual(
          linked.map((e) => [e.seq, e.prevHash, e.hash]),
          entries.map((e) => [e.seq, e.prevHash, e.hash]),
        );
      }
    }
    assert.ok(c.op === 'chain' || c.op === 'verifyChain', `unknown op ${c.op}`);
    const r = verifyChain(c.entries, c.prevHash, c.firstSeq);
    assert.deepEqual(
      { ok: r.ok, checked: r.checked },
      { ok: true, checked: c.checked ?? c.entries.length },
    );
  });
  cases(F, load(F).invalid, (c) => {
    const r = verifyChain(c.entries, c.prevHash, c.firstSeq);
    assert.deepEqual({ ok: r.ok, brokenAt: r.brokenAt }, { ok: false, brokenAt: c.brokenAt });
  });
});

// ---------------------------------------------------------------------------------------------

test('the generator reproduces the cheap files byte for byte', async () => {
  for (const f of [
    'derive.json',
    'split-operators.json',
    'ticket.json',
    'seal.json',
    'audit.json',
  ]) {
    const text = render(await GENERATORS[f]!());
    assert.ok(
      text === readFileSync(new URL(`./vectors/${f}`, import.meta.url), 'utf8'),
      `${f} differs from a fresh run: rerun npm run vectors`,
    );
  }
});
