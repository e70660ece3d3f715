/**
 * Sealing at rest (src/manager/seal.ts). The encoding is checked against an independent
 * implementation: key derivation with @noble/hashes HKDF and decryption with WebCrypto AES-GCM.
 */
import assert from 'node:assert/strict';
import {
  chmodSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { toB64u, toHex } from '../src/core/bytes.ts';
import { seededRng } from '../src/core/random.ts';
import {
  createSealer,
  generateRootKeyFile,
  loadRootKey,
  rootKeyFromShares,
  rootKeyId,
  splitRootKey,
} from '../src/manager/seal.ts';

const te = new TextEncoder();
const info = (label: string) => new Uint8Array([...te.encode(`blindfold/v1/${label}`), 0]);
const code = (c: string, re?: RegExp) => (e: unknown) =>
  (e as { code?: string }).code === c && (re === undefined || re.test((e as Error).message));
const root = seededRng(new Uint8Array(32).fill(3))(32);
const otherRoot = seededRng(new Uint8Array(32).fill(4))(32);

describe('sealer', () => {
  const sealer = createSealer(root);

  test('layout matches an independent HKDF + WebCrypto AES-GCM implementation', async () => {
    const pt = te.encode('the CA private key');
    const blob = sealer.seal('ca-key', pt);
    assert.equal(blob.length, 1 + 8 + 12 + pt.length + 16);
    assert.equal(blob[0], 1);
    const id = hkdf(sha256, root, undefined, info('seal-key-id'), 8);
    assert.equal(toHex(blob.subarray(1, 9)), toHex(id));
    assert.equal(sealer.keyId, toHex(id));
    assert.equal(toHex(rootKeyId(root)), toHex(id));
    const k = hkdf(sha256, root, undefined, info('seal'), 32);
    const key = await crypto.subtle.importKey('raw', k, 'AES-GCM', false, ['decrypt']);
    const aad = new Uint8Array([...te.encode('blindfold/v1/seal'), 0, ...te.encode('ca-key')]);
    const out = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: blob.slice(9, 21), additionalData: aad },
      key,
      blob.slice(21),
    );
    assert.deepEqual(new Uint8Array(out), pt);
  });

  test('round trip for any name and plaintext; fresh nonce each time', () => {
    fc.assert(
      fc.property(fc.string(), fc.uint8Array({ maxLength: 300 }), (name, pt) => {
        const a = sealer.seal(name, pt);
        const b = sealer.seal(name, pt);
        assert.notDeepEqual(a.subarray(9, 21), b.subarray(9, 21));
        assert.deepEqual(sealer.open(name, a), pt);
        assert.deepEqual(createSealer(Uint8Array.from(root)).open(name, b), pt);
      }),
      { numRuns: 100 },
    );
  });

  test('a blob cannot move to another name', () => {
    const blob = sealer.seal('ticket-mac-key', te.encode('k'));
    assert.throws(() => sealer.open('ca-key', blob), code('ERR_DECRYPT', /^decryption failed$/));
    assert.throws(() => sealer.open('ticket-mac-key\0', blob), code('ERR_DECRYPT'));
  });

  test('every flipped bit after the key id fails authentication generically', () => {
    const blob = sealer.seal('x', te.encode('secret bytes'));
    for (let i = 9; i < blob.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const t = Uint8Array.from(blob);
        t[i]! ^= bit;
        assert.throws(() => sealer.open('x', t), code('ERR_DECRYPT'));
      }
    }
  });

  test('structure and key id errors are precise', () => {
    const blob = sealer.seal('x', te.encode('s'));
    assert.throws(
      () => createSealer(otherRoot).open('x', blob),
      code('ERR_SEALED', /sealed under a different root key/),
    );
    const badId = Uint8Array.from(blob);
    badId[3]! ^= 1;
    assert.throws(() => sealer.open('x', badId), code('ERR_SEALED'));
    const badVersion = Uint8Array.from(blob);
    badVersion[0] = 2;
    assert.throws(() => sealer.open('x', badVersion), code('ERR_UNSUPPORTED_VERSION'));
    assert.throws(() => sealer.open('x', blob.subarray(0, 36)), code('ERR_DECODE'));
    assert.deepEqual(
      sealer.open('empty', sealer.seal('empty', new Uint8Array(0))),
      new Uint8Array(0),
    );
  });

  test('bad root keys and destroy()', () => {
    assert.throws(() => createSealer(new Uint8Array(31)), code('ERR_INVALID_ARGUMENT'));
    assert.throws(() => createSealer(new Uint8Array(32)), code('ERR_PARAMS'));
    const s = createSealer(root);
    const blob = s.seal('x', te.encode('y'));
    s.destroy();
    assert.throws(() => s.open('x', blob), code('ERR_SEALED'));
    assert.throws(() => s.seal('x', blob), code('ERR_SEALED'));
  });
});

describe('root key sources', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bf-seal-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('from the environment (base64url)', () => {
    assert.deepEqual(loadRootKey({ env: toB64u(root) }), root);
    assert.deepEqual(loadRootKey({ env: ` ${toB64u(root)}\n` }), root);
    assert.throws(
      () => loadRootKey({ env: toB64u(root.subarray(0, 16)) }),
      code('ERR_DECODE', /32 bytes/),
    );
    assert.throws(
      () => loadRootKey({ env: `${toB64u(root)}=` }),
      code('ERR_DECODE', /BLINDFOLD_ROOT_KEY/),
    );
  });

  test('no source: an actionable ERR_SEALED; two sources: refused', () => {
    for (const src of [{}, { env: '' }, { env: undefined, file: '' }]) {
      assert.throws(
        () => loadRootKey(src),
        code(
          'ERR_SEALED',
          /^no root key: set BLINDFOLD_ROOT_KEY, pass --root-key-file, or start sealed and unseal with operator shares$/,
        ),
      );
    }
    assert.throws(
      () => loadRootKey({ env: toB64u(root), file: join(dir, 'k') }),
      code('ERR_INVALID_ARGUMENT'),
    );
  });

  test('generateRootKeyFile: 0600, loadable, never overwrites, leaves no temp file', () => {
    const p = join(dir, 'root.key');
    const key = generateRootKeyFile(p);
    assert.equal(key.length, 32);
    if (process.platform !== 'win32') assert.equal(statSync(p).mode & 0o777, 0o600);
    assert.equal(readFileSync(p, 'utf8'), `${toB64u(key)}\n`);
    assert.deepEqual(loadRootKey({ file: p }), key);
    const before = readFileSync(p);
    assert.throws(() => generateRootKeyFile(p), code('ERR_CONFLICT', /refusing to overwrite/));
    assert.deepEqual(readFileSync(p), before);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith('.tmp')),
      [],
    );
    assert.throws(() => generateRootKeyFile(join(dir, 'no-such-dir', 'k')), code('ERR_IO'));
  });

  test('a key file readable by group or others is refused with the fix', {
    skip: process.platform === 'win32',
  }, () => {
    const p = join(dir, 'loose.key');
    generateRootKeyFile(p);
    for (const m of [0o640, 0o604, 0o644]) {
      chmodSync(p, m);
      assert.throws(
        () => loadRootKey({ file: p }),
        code('ERR_FORBIDDEN', new RegExp(`chmod 600 ${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`)),
      );
    }
    chmodSync(p, 0o400);
    assert.equal(loadRootKey({ file: p }).length, 32);
  });

  test('raw 32-byte key files; malformed and missing files', () => {
    const raw = join(dir, 'raw.key');
    writeFileSync(raw, root, { mode: 0o600 });
    assert.deepEqual(loadRootKey({ file: raw }), root);
    const bad = join(dir, 'bad.key');
    writeFileSync(bad, 'not a key\n', { mode: 0o600 });
    assert.throws(() => loadRootKey({ file: bad }), code('ERR_DECODE'));
    assert.throws(
      () => loadRootKey({ file: join(dir, 'missing.key') }),
      code('ERR_IO', /missing\.key/),
    );
    assert.throws(() => loadRootKey({ file: dir }), code('ERR_IO'));
  });
});

describe('operator shares', () => {
  test('any threshold of the shares unseal; a wrong share is caught by the key id', () => {
    const sealer = createSealer(root);
    const blob = sealer.seal('ca-key', te.encode('pem'));
    const shares = splitRootKey(root, 3, 5);
    assert.ok(shares.every((s) => s.startsWith('bf-share-')));
    const key = rootKeyFromShares([shares[4]!, shares[0]!, shares[2]!], sealer.keyId);
    assert.deepEqual(createSealer(key).open('ca-key', blob), te.encode('pem'));
    const foreign = splitRootKey(otherRoot, 3, 5);
    assert.throws(
      () => rootKeyFromShares([shares[0]!, shares[1]!, foreign[2]!], sealer.keyId),
      code('ERR_SEALED'),
    );
    assert.throws(() => rootKeyFromShares([shares[0]!, shares[1]!]), code('ERR_INVALID_ARGUMENT'));
  });
});
