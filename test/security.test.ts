/**
 * The security claims of the 2-location modes, tested as behaviour (threat model T1, T2, T4, T6):
 * stolen state does not decrypt, no key bytes in the manager's database, files, heap snapshot or
 * live memory, nor in the appliance's state, a bad ticket costs no group operation, and two
 * requests for the same item carry unrelated blinded values.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cp, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Appliance, loadState } from '../src/appliance/appliance.ts';
import { fromB64u, toB64u } from '../src/core/bytes.ts';
import { getScheme } from '../src/core/schemes/index.ts';
import {
  cleanup,
  createKeyring,
  encodingsOf,
  hasBytes,
  type ManagerProcess,
  newAppliance,
  newRootKey,
  runManagerExpectingFailure,
  scanProcessMemory,
  startManagerProcess,
  tmpDir,
} from './helpers/deploy.ts';

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

async function groupOps(m: ManagerProcess): Promise<number> {
  const res = await fetch(`${m.url}/metrics`).catch(() => undefined);
  if (res) return Number(/blindfold_group_operations_total (\d+)/.exec(await res.text())?.[1]);
  // The manager speaks TLS with a private CA: use our client, which trusts it.
  const https = await import('node:https');
  return new Promise((resolve, reject) => {
    https
      .get(`${m.url}/metrics`, { ca: m.caPem }, (r) => {
        let t = '';
        r.on('data', (d) => {
          t += d;
        });
        r.on('end', () => resolve(Number(/blindfold_group_operations_total (\d+)/.exec(t)?.[1])));
      })
      .on('error', reject);
  });
}

describe('threat model, 2-location modes', () => {
  let m: ManagerProcess;
  let home: string;
  let adir: string;
  let snapDir: string;
  let a: Appliance;
  const rootKey = newRootKey();
  const secrets: Uint8Array[] = []; // item secrets S_i, seen through the test-only hook
  const keks: Uint8Array[] = [];
  const masterSeed = new Uint8Array(randomBytes(32));
  let masterBytes: Uint8Array;
  const items: Awaited<ReturnType<Appliance['newItem']>>[] = [];

  before(async () => {
    home = await tmpDir();
    adir = await tmpDir();
    snapDir = await tmpDir();
    m = await startManagerProcess({
      home,
      rootKey,
      cwd: snapDir,
      nodeArgs: ['--heapsnapshot-signal=SIGUSR2'],
    });
    a = await newAppliance(m, adir, 'a', (_k, s) => secrets.push(new Uint8Array(s)));
    await createKeyring(m, 'default', 'hom2', 'ec-elgamal');
    await a.initKeyring('default', { importKey: masterSeed });
    // The test knows M because it chose the imported key material.
    const st = await loadState(adir);
    const ec = getScheme('ec-elgamal');
    const pk = ec.decodePublicKey(fromB64u(st.keyrings.default!.concealments[0]!.publicKey!));
    masterBytes = ec.encodePlaintext(pk, ec.plaintextFromSeed(pk, masterSeed));
    // Workload: items created and recovered.
    for (let i = 0; i < 5; i++) {
      const it = await a.newItem('default');
      items.push(it);
      keks.push(it.kek);
    }
    for (const it of items) {
      const header = { fields: { ...it.fields, fileNonce: new Uint8Array(16) } };
      const kek = await a.openItem(header as never);
      assert.deepEqual(kek, it.kek);
    }
  });

  after(async () => {
    a?.close();
    await m?.stop();
    await cleanup(home, adir, snapDir);
  });

  test('the hook saw the item secrets (the scans below look for real keys)', () => {
    assert.equal(secrets.length, 10);
    assert.equal(masterBytes.length, 32);
  });

  test('T1: the manager database and files hold no master key, item secret or KEK bytes', async () => {
    const needles = [masterBytes, ...secrets, ...keks].flatMap(encodingsOf);
    const files = await filesUnder(home);
    assert.ok(files.some((f) => f.endsWith('blindfold.db')));
    for (const f of files) {
      const data = new Uint8Array(await readFile(f));
      for (const n of needles) assert.equal(hasBytes(data, n), false, `${f} holds key bytes`);
    }
  });

  test('T1: the manager heap snapshot and live memory hold no master key, item secret or KEK', async () => {
    const before = new Set(await readdir(snapDir));
    m.proc.kill('SIGUSR2');
    let snap: string | undefined;
    for (let i = 0; i < 200 && !snap; i++) {
      await new Promise((r) => setTimeout(r, 100));
      snap = (await readdir(snapDir)).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
    }
    assert.ok(snap, 'heap snapshot written');
    // Wait until the snapshot file is complete (its JSON ends with a closing brace).
    let data = new Uint8Array(0);
    for (let i = 0; i < 100; i++) {
      data = new Uint8Array(await readFile(join(snapDir, snap!)));
      if (data.length > 0 && data[data.length - 1] === 0x7d) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(data.length > 100000);
    const needles = [masterBytes, ...secrets, ...keks].flatMap(encodingsOf);
    for (const n of needles)
      assert.equal(hasBytes(data, n), false, 'heap snapshot holds key bytes');
    // V8 snapshots omit ArrayBuffer contents: scan the process's whole memory image as well.
    const hits = await scanProcessMemory(m.proc.pid!, [masterBytes, ...secrets, ...keks]);
    assert.equal(hits, 0, 'manager memory holds key bytes');
    // Positive control: the same scan finds the secrets in this test process, which holds them.
    assert.ok((await scanProcessMemory(process.pid, [secrets[0]!])) > 0, 'the memory scan works');
  });

  test('T2: the appliance state holds no master key, item secret or KEK bytes', async () => {
    const needles = [masterBytes, ...secrets, ...keks].flatMap(encodingsOf);
    for (const f of await filesUnder(adir)) {
      const data = new Uint8Array(await readFile(f));
      for (const n of needles) assert.equal(hasBytes(data, n), false, `${f} holds key bytes`);
    }
  });

  test('T4: two requests for the same item carry unrelated blinded values', async () => {
    const seen: string[] = [];
    const orig = a.client.request.bind(a.client);
    a.client.request = (async (
      method: string,
      path: string,
      body?: unknown,
      o?: { idempotent?: boolean },
    ) => {
      if (path === '/v1/recover') seen.push((body as { blinded: string }).blinded);
      // Coalesced recoveries (src/appliance/coalesce.ts) travel as one batch request.
      if (path === '/v1/recover/batch') {
        for (const r of (body as { requests: { blinded: string }[] }).requests)
          seen.push(r.blinded);
      }
      return orig(method, path, body, o);
    }) as typeof a.client.request;
    try {
      const header = { fields: { ...items[0]!.fields, fileNonce: new Uint8Array(16) } };
      const k1 = await a.openItem(header as never);
      const k2 = await a.openItem(header as never);
      assert.deepEqual(k1, k2);
    } finally {
      a.client.request = orig;
    }
    assert.equal(seen.length, 2);
    const [x, y] = seen.map((s) => fromB64u(s));
    assert.notDeepEqual(x, y);
    // Not only different: no component repeats (both halves of the ElGamal ciphertext change).
    assert.notDeepEqual(x!.subarray(0, 32), y!.subarray(0, 32));
    assert.notDeepEqual(x!.subarray(32), y!.subarray(32));
  });

  test('T6: a request with a bad ticket is refused and costs no group operation', async () => {
    const it = items[1]!;
    const forged = new Uint8Array(it.fields.ticket);
    forged[forged.length - 1]! ^= 1;
    const before = await groupOps(m);
    for (const ticket of [forged, items[2]!.fields.ticket /* another item's ticket */]) {
      const header = { fields: { ...it.fields, ticket, fileNonce: new Uint8Array(16) } };
      await assert.rejects(
        a.openItem(header as never),
        (e: Error & { code?: string }) => e.code === 'ERR_TICKET_INVALID',
      );
    }
    assert.equal(await groupOps(m), before, 'no group operation for refused requests');
    const header = { fields: { ...it.fields, fileNonce: new Uint8Array(16) } };
    await a.openItem(header as never);
    assert.equal(await groupOps(m), before + 1, 'the counter does count real requests');
  });

  test('stolen manager state with another root key: the manager refuses to start, nothing opens', async () => {
    const copy = await tmpDir();
    try {
      await cp(home, copy, { recursive: true });
      const r = await runManagerExpectingFailure({ home: copy, rootKey: newRootKey() });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /ERR_SEALED/);
    } finally {
      await cleanup(copy);
    }
  });

  test('stolen appliance state without the manager: decryption fails', async () => {
    const copy = await tmpDir();
    try {
      await cp(adir, copy, { recursive: true });
      const state = await loadState(copy);
      // The thief's machine cannot reach the manager (here: nothing listens on that port).
      const thief = new Appliance({
        dir: copy,
        state: { ...state, managerUrl: 'https://127.0.0.1:9' },
      });
      const header = { fields: { ...items[0]!.fields, fileNonce: new Uint8Array(16) } };
      await assert.rejects(
        thief.openItem(header as never),
        (e: Error & { code?: string }) => e.code === 'ERR_UNAVAILABLE',
      );
      thief.close();
      // A manager with the stolen manager's database but a different root key is no help either
      // (previous test); and another manager does not know this appliance at all:
      const otherHome = await tmpDir();
      const other = await startManagerProcess({ home: otherHome, rootKey: newRootKey() });
      try {
        const thief2 = new Appliance({
          dir: copy,
          state: { ...state, managerUrl: other.url, caPem: other.caPem },
        });
        await assert.rejects(thief2.openItem(header as never), (e: Error & { code?: string }) =>
          ['ERR_UNAVAILABLE', 'ERR_UNAUTHENTICATED'].includes(e.code ?? ''),
        );
        thief2.close();
      } finally {
        await other.stop();
        await cleanup(otherHome);
      }
    } finally {
      await cleanup(copy);
    }
  });

  test('with both complete states the key is recoverable (proof that the copies were complete)', async () => {
    // Manager state: d_A, unsealed with the right root key. Appliance state: Enc_{D_A}(M).
    const { createSealer } = await import('../src/manager/seal.ts');
    const { openSqliteStore } = await import('../src/store/sqlite.ts');
    const store = openSqliteStore(join(home, 'blindfold.db'));
    try {
      const rec = await store.getApplianceKey(a.id, 'default', 1, 1);
      assert.ok(rec);
      const sealer = createSealer(fromB64u(rootKey));
      const ec = getScheme('ec-elgamal');
      const sk = ec.decodeSecretKey(
        sealer.open(`appliance/${a.id}/default/v1/m1`, rec.sealedSecret),
      );
      const st = await loadState(adir);
      const pk = ec.publicKeyOf(sk);
      const m = ec.decrypt(
        sk,
        ec.decodeCiphertext(pk, fromB64u(st.keyrings.default!.concealments[0]!.concealed)),
      );
      assert.equal(toB64u(ec.encodePlaintext(pk, m)), toB64u(masterBytes));
    } finally {
      await store.close();
    }
  });
});
