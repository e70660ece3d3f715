/**
 * Client-blinded keys (threat model T7, SPEC.md §5.8) as behaviour: after client-blinded
 * GenerateDataKey and Decrypt calls in hom2 and hom2-opt, no byte of any key the client obtained
 * (the item secret S and the data key KEK) is in the manager's database or files, the appliance's
 * state files, either process's heap snapshot, or either process's live memory. The scan is shown
 * to work by finding the key in the test process, which holds it.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fromB64u, toB64u } from '../src/core/bytes.ts';
import { decodePoint, encodePoint, mul, sub } from '../src/core/group.ts';
import { blobItemRef, clientKeyPair, contextHash, decodeBlob } from '../src/core/kms.ts';
import { itemKek } from '../src/core/protocol.ts';
import { KmsClient } from '../src/sdk/index.ts';
import { cleanup, encodingsOf, hasBytes, scanProcessMemory, tmpDir } from './helpers/deploy.ts';
import { type KmsDeployment, startKmsDeployment } from './helpers/kms.ts';

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

async function heapSnapshot(pid: number, kill: () => void, dir: string): Promise<Uint8Array> {
  const before = new Set(await readdir(dir));
  kill();
  for (let i = 0; i < 300; i++) {
    const f = (await readdir(dir)).find(
      (x) => x.endsWith('.heapsnapshot') && x.includes(`.${pid}.`) && !before.has(x),
    );
    if (f) {
      // Written incrementally: wait until its size settles.
      let last = -1;
      for (;;) {
        await new Promise((r) => setTimeout(r, 200));
        const b = await readFile(join(dir, f));
        if (b.length === last && b.length > 0) return new Uint8Array(b);
        last = b.length;
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no heap snapshot from ${pid}`);
}

describe('T7: client-blinded keys are held by no Blindfold component', () => {
  let d: KmsDeployment;
  let snapDir: string;
  const keys: Uint8Array[] = []; // every S and KEK the client obtained

  before(async () => {
    snapDir = await tmpDir();
    d = await startKmsDeployment({
      managerNodeArgs: ['--heapsnapshot-signal=SIGUSR2'],
      applianceNodeArgs: ['--heapsnapshot-signal=SIGUSR2'],
      cwd: snapDir,
    });
    const app = await d.newApp('t7', ['create-key', 'generate-data-key', 'decrypt']);
    const kms = new KmsClient({ endpoint: d.url, token: app.token, retries: 0 });
    for (const [keyId, mode] of [
      ['t7-hom2', 'hom2'],
      ['t7-opt', 'hom2-opt'],
    ] as const) {
      await kms.createKey({ keyId, mode });
      const context = { user: 'alice' };
      // Through the SDK: the data keys it returns.
      for (let i = 0; i < 3; i++) {
        const dk = await kms.generateClientBlindedDataKey({ keyId, context });
        const again = await kms.decrypt({ ciphertextBlob: dk.ciphertextBlob, context });
        assert.deepEqual(again.plaintext, dk.plaintext);
        keys.push(dk.plaintext);
      }
      // By hand, to see the item secret S too (the SDK wipes it).
      const { u, U } = clientKeyPair();
      const r = (await (
        await fetch(`${d.url}/kms/v1/generate-data-key`, {
          method: 'POST',
          headers: { authorization: `Bearer ${app.token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ keyId, context, clientKey: toB64u(U) }),
        })
      ).json()) as { ciphertextBlob: string; clientCiphertext: string };
      const ct = fromB64u(r.clientCiphertext);
      const s = encodePoint(
        sub(decodePoint(ct.subarray(32)), mul(u, decodePoint(ct.subarray(0, 32)))),
      );
      const blob = decodeBlob(fromB64u(r.ciphertextBlob));
      const kek = itemKek(s, blobItemRef(blob, contextHash(context)));
      const viaSdk = await kms.decrypt({ ciphertextBlob: blob.prefix, context });
      assert.deepEqual(viaSdk.plaintext, kek, 'S computed by hand gives the same data key');
      keys.push(s, kek);
    }
  });
  after(async () => {
    await d?.stop();
    await cleanup(snapDir);
  });

  test('the client obtained real keys (8 data keys and 2 item secrets)', () => {
    assert.equal(keys.length, 10);
    for (const k of keys) assert.equal(k.length, 32);
  });

  test('no key bytes in the manager database and files, or the appliance state', async () => {
    const needles = keys.flatMap(encodingsOf);
    const files = [...(await filesUnder(d.home)), ...(await filesUnder(d.adir))];
    assert.ok(files.some((f) => f.endsWith('blindfold.db')));
    assert.ok(files.some((f) => f.endsWith('appliance.json')));
    for (const f of files) {
      const data = new Uint8Array(await readFile(f));
      for (const n of needles) assert.equal(hasBytes(data, n), false, `${f} holds key bytes`);
    }
  });

  test('no key bytes in the heap snapshots or live memory of the manager and the appliance', async () => {
    const needles = keys.flatMap(encodingsOf);
    for (const [name, proc] of [
      ['manager', d.m.proc],
      ['appliance', d.aproc],
    ] as const) {
      const snap = await heapSnapshot(proc.pid!, () => proc.kill('SIGUSR2'), snapDir);
      assert.ok(snap.length > 1_000_000, `${name} heap snapshot written`);
      for (const n of needles)
        assert.equal(hasBytes(snap, n), false, `${name} heap holds key bytes`);
      const hits = await scanProcessMemory(proc.pid!, keys);
      assert.equal(hits, 0, `${name} live memory holds key bytes`);
    }
    assert.ok((await scanProcessMemory(process.pid, [keys[0]!])) > 0, 'the memory scan works');
  });
});
