/**
 * Round trips in every mode and scheme of the 2-location family, against a real manager process
 * over mutual TLS: files of 0, 1, 64 KiB − 1, 64 KiB and 64 KiB + 1 bytes encrypt and decrypt,
 * and a second appliance of another keyring cannot open them.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { Appliance } from '../src/appliance/appliance.ts';
import {
  decryptStream,
  encryptStream,
  readHeader,
  sealFileHeader,
  unwrapDek,
} from '../src/appliance/stream.ts';
import { freshFileSecrets } from '../src/core/format.ts';
import {
  cleanup,
  createKeyring,
  type ManagerProcess,
  newAppliance,
  newRootKey,
  startManagerProcess,
  tmpDir,
} from './helpers/deploy.ts';

async function collect(stream: PassThrough): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

async function encrypt(a: Appliance, keyring: string, data: Buffer): Promise<Buffer> {
  const item = await a.newItem(keyring);
  const { dek, fileNonce } = freshFileSecrets();
  const header = sealFileHeader({ ...item.fields, fileNonce }, item.kek, dek);
  const out = new PassThrough();
  const done = collect(out);
  await encryptStream([data], out, { header, dek, fileNonce });
  return done;
}

async function decrypt(a: Appliance, file: Buffer): Promise<Buffer> {
  const { header, headerBytes, payload } = await readHeader(Readable.from([file]));
  const kek = await a.openItem(header);
  const dek = unwrapDek(headerBytes, kek);
  const out = new PassThrough();
  const done = collect(out);
  await decryptStream(payload, out, { dek, fileNonce: header.fields.fileNonce });
  return done;
}

const CASES: [mode: string, scheme: string][] = [
  ['split', 'xor'],
  ['split', 'add-p'],
  ['split', 'mul-p'],
  ['hom2', 'ec-elgamal'],
  ['hom2', 'paillier'],
  ['hom2', 'rsa'],
  ['hom2', 'gm'],
  ['hom2-opt', 'ec-elgamal'],
  ['hom2-opt', 'paillier'],
  ['hom2-opt', 'rsa'],
  ['hom2-opt', 'gm'],
];
const SIZES = [0, 1, 65535, 65536, 65537];

describe('2-location modes end to end (real manager process, mTLS)', () => {
  let m: ManagerProcess;
  let home: string;
  let adir: string;
  let bdir: string;
  let a: Appliance;
  let b: Appliance;

  before(async () => {
    home = await tmpDir();
    adir = await tmpDir();
    bdir = await tmpDir();
    m = await startManagerProcess({ home, rootKey: newRootKey() });
    a = await newAppliance(m, adir, 'a');
    b = await newAppliance(m, bdir, 'b');
  });
  after(async () => {
    a?.close();
    b?.close();
    await m?.stop();
    await cleanup(home, adir, bdir);
  });

  for (const [mode, scheme] of CASES) {
    test(`${mode} / ${scheme}: round trips of ${SIZES.join(', ')} bytes`, async () => {
      const keyring = `${mode}-${scheme}`;
      await createKeyring(m, keyring, mode, scheme);
      await a.initKeyring(keyring);
      for (const size of SIZES) {
        const data = randomBytes(size);
        const file = await encrypt(a, keyring, data);
        assert.deepEqual(await decrypt(a, file), data, `size ${size}`);
      }
      // An appliance that holds no master key for this keyring cannot open its files, and cannot
      // silently make a second, different master for the same version.
      const fileA = await encrypt(a, keyring, Buffer.from('before rotation'));
      const code = (c: string) => (e: Error & { code?: string }) => e.code === c;
      await assert.rejects(decrypt(b, fileA), code('ERR_NOT_FOUND'));
      await assert.rejects(b.initKeyring(keyring), code('ERR_CONFLICT'));

      // Manager-key rotation: add first, re-conceal, old files keep decrypting.
      await m.op.request('POST', `/v1/keyrings/${keyring}/rotate`);
      if (scheme === 'rsa') {
        await assert.rejects(a.followManagerRotation(keyring), code('ERR_UNSUPPORTED_SCHEME'));
      } else {
        assert.equal(await a.followManagerRotation(keyring), 2);
        assert.equal(a.latestVersions(keyring).managerVersion, 2);
      }
      const fileB = await encrypt(a, keyring, Buffer.from('after manager rotation'));
      // Master-key rotation: a new master version, concealed at once.
      await a.initKeyring(keyring);
      assert.equal(a.latestVersions(keyring).masterVersion, 2);
      const fileC = await encrypt(a, keyring, Buffer.from('after master rotation'));
      assert.equal((await readHeader(Readable.from([fileC]))).header.fields.masterVersion, 2);
      assert.equal((await decrypt(a, fileA)).toString(), 'before rotation');
      assert.equal((await decrypt(a, fileB)).toString(), 'after manager rotation');
      assert.equal((await decrypt(a, fileC)).toString(), 'after master rotation');

      // Rewrap: the header moves to the newest versions, the chunks are copied untouched.
      const { header, headerBytes } = await readHeader(Readable.from([fileA]));
      const dek = unwrapDek(headerBytes, await a.openItem(header));
      const item = await a.newItem(keyring);
      const fields = { ...item.fields, fileNonce: header.fields.fileNonce };
      const newHeader = sealFileHeader(fields, item.kek, dek);
      const rewrapped = Buffer.concat([newHeader, fileA.subarray(header.headerLength)]);
      assert.equal((await readHeader(Readable.from([rewrapped]))).header.fields.masterVersion, 2);
      assert.equal((await decrypt(a, rewrapped)).toString(), 'before rotation');
    });
  }
});
