/**
 * hom3 and homN with real blinder and manager processes (SPEC.md §5.4): round trips for every
 * scheme, stolen state of every proper subset of locations (N = 3, 4 and 5 offline; N = 3 again as
 * fresh processes started from the copies), a blinder that is down
 * or answers garbage, adding a blinder without touching data, the manager's relay checks, and bad
 * input to every blinder route.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Appliance, loadState } from '../src/appliance/appliance.ts';
import { createJsonClient, type JsonClient } from '../src/appliance/client.ts';
import { encryptStream, nodeAesGcm } from '../src/appliance/stream.ts';
import { BlinderStore } from '../src/blinder/store.ts';
import { fromB64u, toB64u } from '../src/core/bytes.ts';
import { type BlindfoldError, isBlindfoldError } from '../src/core/errors.ts';
import {
  type DecodedHeader,
  decodeHeader,
  freshFileSecrets,
  openHeader,
  sealHeader,
} from '../src/core/format.ts';
import { type ItemRef, itemKek, shareSeed } from '../src/core/protocol.ts';
import { getScheme } from '../src/core/schemes/index.ts';
import { applianceSecretName } from '../src/manager/manager.ts';
import { createSealer } from '../src/manager/seal.ts';
import { openSqliteStore } from '../src/store/sqlite.ts';
import {
  type BlinderProcess,
  clientAs,
  registerBlinder,
  startBlinderProcess,
} from './helpers/blinders.ts';
import {
  BIN,
  cleanup,
  encodingsOf,
  hasBytes,
  type ManagerProcess,
  newAppliance,
  newRootKey,
  startManagerProcess,
  tmpDir,
} from './helpers/deploy.ts';

const SCHEMES = ['ec-elgamal', 'paillier', 'rsa', 'gm'] as const;

/** Creates an item and seals a real header for it (what a file would carry). */
async function newHeader(a: Appliance, keyring: string): Promise<DecodedHeader> {
  const item = await a.newItem(keyring);
  const { dek, fileNonce } = freshFileSecrets();
  const header = sealHeader(nodeAesGcm, { ...item.fields, fileNonce }, item.kek, dek);
  return decodeHeader(header);
}

async function opens(a: Appliance, h: DecodedHeader): Promise<boolean> {
  const kek = await a.openItem(h);
  openHeader(nodeAesGcm, h, kek);
  return true;
}

async function rejectsWith(p: Promise<unknown>, code: string, re?: RegExp) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isBlindfoldError(e), `not a BlindfoldError: ${String(e)}`);
    assert.equal((e as BlindfoldError).code, code, (e as Error).message);
    if (re) assert.match((e as Error).message, re);
    return true;
  });
}

async function itemCreations(m: ManagerProcess): Promise<number> {
  const out = await m.op.request<{ entries: { outcome: string }[] }>(
    'GET',
    '/v1/audit?action=item.create&limit=10000',
  );
  return out.entries.filter((e) => e.outcome === 'ok').length;
}

describe('blinders: hom3 and homN', () => {
  let dir: string;
  let m: ManagerProcess;
  let mRoot: string;
  const ids: string[] = [];
  const bs: BlinderProcess[] = [];
  let a: Appliance;

  before(async () => {
    dir = await tmpDir('bf-blinder-');
    mRoot = newRootKey();
    await mkdir(join(dir, 'manager'));
    m = await startManagerProcess({ home: join(dir, 'manager'), rootKey: mRoot });
    for (let i = 0; i < 3; i++) {
      const home = join(dir, `b${i + 1}`);
      const id = await registerBlinder(m, home, `b${i + 1}`);
      ids.push(id);
      bs.push(await startBlinderProcess({ home, id }));
    }
    a = await newAppliance(m, join(dir, 'appliance'));
  });

  after(async () => {
    a?.close();
    for (const b of bs) await b.stop();
    await m?.stop();
    await cleanup(dir);
  });

  test('round trips in hom3, homN (N = 4, 5) for every scheme', async () => {
    for (const scheme of SCHEMES) {
      for (const n of [3, 4, 5]) {
        const name = `rt-${scheme}-${n}`;
        await m.op.request('POST', '/v1/keyrings', {
          name,
          mode: n === 3 ? 'hom3' : 'homN',
          scheme,
          blinders: ids.slice(0, n - 2),
        });
        await a.initKeyring(name);
        const c = a.state.keyrings[name]!.concealments[0]!;
        assert.deepEqual(c.blinders, ids.slice(0, n - 2));
        const h = await newHeader(a, name);
        assert.equal(h.fields.mode, n === 3 ? 4 : 5);
        assert.ok(await opens(a, h), `${name} opens`);
        assert.ok(await opens(a, h), `${name} opens twice`);
      }
    }
  });

  test('the manager takes chain requests only through the chain', async () => {
    await m.op.request('POST', '/v1/keyrings', {
      name: 'direct',
      mode: 'hom3',
      blinders: [ids[0]],
    });
    await a.initKeyring('direct');
    const h = await newHeader(a, 'direct');
    const c = a.state.keyrings.direct!.concealments[0]!;
    // Straight to the manager, skipping the blinder: refused before any work.
    await rejectsWith(
      a.client.request('POST', '/v1/recover', {
        keyring: 'direct',
        itemId: toB64u(h.fields.itemId),
        masterVersion: 1,
        managerVersion: 1,
        entropy: toB64u(h.fields.itemData),
        ticket: toB64u(h.fields.ticket),
        blinded: c.concealed,
      }),
      'ERR_FORBIDDEN',
      /through its blinders/,
    );
    // A blinder that is not the last of the chain cannot relay, and one that is cannot replay.
    const relayAs = async (i: number) => clientAs(bs[i]!.home, m.url);
    const envelope = await captureEnvelope(a, 'direct', h);
    const b2 = await relayAs(1);
    await rejectsWith(b2.request('POST', '/v1/chain/relay', envelope), 'ERR_FORBIDDEN');
    b2.close();
    const b1 = await relayAs(0);
    await b1.request('POST', '/v1/chain/relay', envelope); // first use: an answer
    await rejectsWith(b1.request('POST', '/v1/chain/relay', envelope), 'ERR_CONFLICT', /replay/);
    // A request the appliance did not sign (here: another item) is refused.
    await rejectsWith(
      b1.request('POST', '/v1/chain/relay', {
        ...envelope,
        nonce: toB64u(randomBytes(16)),
        itemId: toB64u(randomBytes(16)),
      }),
      'ERR_UNAUTHENTICATED',
      /authorization/,
    );
    b1.close();
    // Direct creation is refused too, and nothing is written.
    const before = await itemCreations(m);
    await rejectsWith(
      a.client.request('POST', '/v1/items', {
        keyring: 'direct',
        masterVersion: 1,
        blinded: c.concealed,
      }),
      'ERR_FORBIDDEN',
    );
    assert.equal(await itemCreations(m), before);
  });

  test('adding a blinder to a homN keyring changes no data', async () => {
    await m.op.request('POST', '/v1/keyrings', {
      name: 'grow',
      mode: 'homN',
      blinders: ids.slice(0, 2),
    });
    await a.initKeyring('grow');
    const h = await newHeader(a, 'grow');
    const chain = await m.op.request<{ blinders: { id: string }[] }>(
      'POST',
      '/v1/keyrings/grow/blinders',
      { blinder: ids[2] },
    );
    assert.deepEqual(
      chain.blinders.map((b) => b.id),
      ids,
    );
    await a.chainInfo('grow', true);
    assert.ok(await opens(a, h), 'the old header opens through three blinders');
    const c = (await loadState(join(dir, 'appliance'))).keyrings.grow!.concealments[0]!;
    assert.deepEqual(c.blinders, ids, 'the concealment now carries R_3');
    assert.ok(await opens(a, await newHeader(a, 'grow')));
  });

  test('master rotation in hom3 runs a fresh setup through the chain; old items still open', async () => {
    await m.op.request('POST', '/v1/keyrings', { name: 'rot3', mode: 'hom3', blinders: [ids[0]] });
    await a.initKeyring('rot3');
    const old = await newHeader(a, 'rot3');
    await a.initKeyring('rot3'); // a new master version
    const fresh = await newHeader(a, 'rot3');
    assert.equal(old.fields.masterVersion, 1);
    assert.equal(fresh.fields.masterVersion, 2);
    assert.ok(await opens(a, old));
    assert.ok(await opens(a, fresh));
    // Manager-key re-concealment is not implemented for chains: a clear refusal.
    await m.op.request('POST', '/v1/keyrings/rot3/rotate');
    await rejectsWith(
      a.followManagerRotation('rot3'),
      'ERR_UNSUPPORTED_SCHEME',
      /rotate the master/,
    );
  });

  test('manager chain routes: bad input gets a 4xx with a stable code', async () => {
    const st = a.state;
    const anon = createJsonClient({ baseUrl: m.url, caPem: m.caPem, retries: 0 });
    const asAppliance = createJsonClient({
      baseUrl: m.url,
      caPem: st.caPem,
      certPem: st.certificatePem,
      keyPem: st.identityKeyPem,
      retries: 0,
    });
    const spki = (await import('../src/tls/x509.ts')).generateIdentity().spkiDer;
    const blinder1 = await clientAs(bs[0]!.home, m.url);
    try {
      const envRot3 = await captureEnvelope(a, 'rot3', await newHeader(a, 'rot3'));
      const cases: [() => Promise<unknown>, string][] = [
        [
          () => anon.request('POST', '/v1/blinders', { name: 'x', publicKey: toB64u(spki) }),
          'ERR_UNAUTHENTICATED',
        ],
        [() => m.op.request('POST', '/v1/blinders', { name: 'x' }), 'ERR_INVALID_ARGUMENT'],
        [
          () =>
            m.op.request('POST', '/v1/blinders', { name: 'x', publicKey: toB64u(randomBytes(91)) }),
          'ERR_PARAMS',
        ],
        [
          () =>
            m.op.request('POST', '/v1/blinders', { name: 'x', publicKey: toB64u(spki), extra: 1 }),
          'ERR_INVALID_ARGUMENT',
        ],
        [
          () => anon.request('POST', '/v1/blinders/announce', { url: 'https://127.0.0.1:1' }),
          'ERR_UNAUTHENTICATED',
        ],
        [
          () =>
            asAppliance.request('POST', '/v1/blinders/announce', { url: 'https://127.0.0.1:1' }),
          'ERR_UNAUTHENTICATED',
        ],
        [
          () => blinder1.request('POST', '/v1/blinders/announce', { url: 'http://plain' }),
          'ERR_INVALID_ARGUMENT',
        ],
        [
          () =>
            m.op.request('POST', '/v1/keyrings', {
              name: 'h3x',
              mode: 'hom3',
              blinders: ids.slice(0, 2),
            }),
          'ERR_INVALID_ARGUMENT',
        ],
        [
          () =>
            m.op.request('POST', '/v1/keyrings', { name: 'hnx', mode: 'homN', blinders: [ids[0]] }),
          'ERR_INVALID_ARGUMENT',
        ],
        [
          () =>
            m.op.request('POST', '/v1/keyrings', {
              name: 'hnx',
              mode: 'homN',
              blinders: [ids[0], ids[0]],
            }),
          'ERR_INVALID_ARGUMENT',
        ],
        [
          () =>
            m.op.request('POST', '/v1/keyrings', {
              name: 'hnx',
              mode: 'homN',
              blinders: [ids[0], 'bl-0000000000000000'],
            }),
          'ERR_NOT_FOUND',
        ],
        [
          () =>
            m.op.request('POST', '/v1/keyrings', { name: 'h2x', mode: 'hom2', blinders: [ids[0]] }),
          'ERR_INVALID_ARGUMENT',
        ],
        [
          () =>
            m.op.request('POST', '/v1/keyrings', { name: 'h3y', mode: 'hom3', blinders: ['nope'] }),
          'ERR_INVALID_ARGUMENT',
        ],
        [
          () => m.op.request('POST', '/v1/keyrings/rot3/blinders', { blinder: ids[1] }),
          'ERR_INVALID_ARGUMENT',
        ],
        [
          () => m.op.request('POST', '/v1/keyrings/grow/blinders', { blinder: ids[0] }),
          'ERR_INVALID_ARGUMENT',
        ],
        [
          () => m.op.request('POST', '/v1/keyrings/nope/blinders', { blinder: ids[0] }),
          'ERR_NOT_FOUND',
        ],
        [() => anon.request('GET', '/v1/keyrings/rot3/chain'), 'ERR_UNAUTHENTICATED'],
        [() => asAppliance.request('GET', '/v1/keyrings/nope/chain'), 'ERR_NOT_FOUND'],
        [
          () => blinder1.request('POST', '/v1/chain/relay', { op: 'recover' }),
          'ERR_INVALID_ARGUMENT',
        ],
        [() => asAppliance.request('POST', '/v1/chain/relay', envRot3), 'ERR_UNAUTHENTICATED'],
      ];
      for (const [p, code] of cases) await rejectsWith(p(), code);
      const listed = await m.op.request<{ blinders: { id: string; url: string }[] }>(
        'GET',
        '/v1/blinders',
      );
      assert.deepEqual(
        listed.blinders.map((b) => b.id),
        ids,
      );
      assert.ok(listed.blinders.every((b) => b.url.startsWith('https://127.0.0.1:')));
    } finally {
      anon.close();
      asAppliance.close();
      blinder1.close();
    }
  });

  test('a blinder that is down or answers garbage: clear error, nothing written, retry works', async () => {
    await m.op.request('POST', '/v1/keyrings', {
      name: 'outage',
      mode: 'homN',
      blinders: ids.slice(0, 2),
    });
    await a.initKeyring('outage');
    const h = await newHeader(a, 'outage');
    const b2 = bs[1]!;
    const created = await itemCreations(m);

    await b2.stop();
    await rejectsWith(a.newItem('outage'), 'ERR_UNAVAILABLE', new RegExp(ids[1]!));
    await rejectsWith(a.openItem(h), 'ERR_UNAVAILABLE', new RegExp(ids[1]!));
    assert.equal(await itemCreations(m), created, 'no item was written');

    // The same identity answering garbage (its certificate, so the pin passes).
    const st = JSON.parse(await readFile(join(b2.home, 'blinder.json'), 'utf8'));
    for (const garbage of ['not json', '{"answer": 5}', '{"answer": "AAAA"}']) {
      const srv = createServer({ key: st.identityKeyPem, cert: st.certificatePem }, (_q, r) => {
        r.writeHead(200, { 'content-type': 'application/json' }).end(garbage);
      });
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      const port = (srv.address() as { port: number }).port;
      const self = await clientAs(b2.home, m.url);
      await self.request('POST', '/v1/blinders/announce', { url: `https://127.0.0.1:${port}` });
      self.close();
      // Well-formed but wrong bytes: the appliance's own checks refuse them (the answer does not
      // decode, or does not belong to the item it asked to create).
      const decodes = garbage === '{"answer": "AAAA"}';
      try {
        await eventually(() =>
          rejectsWith(a.openItem(h), decodes ? 'ERR_DECODE' : 'ERR_UNAVAILABLE'),
        );
        await rejectsWith(a.newItem('outage'), 'ERR_UNAVAILABLE');
        assert.equal(await itemCreations(m), created, 'no item was written');
      } finally {
        srv.closeAllConnections();
        srv.close();
      }
    }

    bs[1] = await startBlinderProcess({ home: b2.home, id: b2.id, rootKey: b2.rootKey });
    await eventually(async () => assert.ok(await opens(a, h)));
    assert.ok(await opens(a, await newHeader(a, 'outage')));
  });

  test('bad input to every blinder route: 4xx with a stable code', async () => {
    const b1 = bs[0]!;
    const st = a.state;
    const asAppliance = (url: string) =>
      createJsonClient({
        baseUrl: url,
        caPem: st.caPem,
        certPem: st.certificatePem,
        keyPem: st.identityKeyPem,
        retries: 0,
      });
    const anon = createJsonClient({ baseUrl: b1.url, caPem: st.caPem, retries: 0 });
    const ap = asAppliance(b1.url);
    const ap2 = asAppliance(bs[1]!.url);
    const op = createJsonClient({ baseUrl: b1.url, caPem: st.caPem, token: await b1.token() });
    try {
      const c = a.state.keyrings['rt-ec-elgamal-3']!.concealments[0]!;
      const setup = {
        keyring: 'rt-ec-elgamal-3',
        managerVersion: 1,
        masterVersion: 1,
        mode: 'hom3',
        scheme: 'ec-elgamal',
        publicKey: c.publicKey!,
        signature: c.signature!,
        ciphertext: c.concealed,
      };
      const h = await newHeader(a, 'rt-ec-elgamal-3');
      const env = await captureEnvelope(a, 'rt-ec-elgamal-3', h);
      const cases: [JsonClient, string, unknown, string][] = [
        [anon, '/v1/chain/setup', setup, 'ERR_UNAUTHENTICATED'],
        [ap, '/v1/chain/setup', { ...setup, extra: 1 }, 'ERR_INVALID_ARGUMENT'],
        [ap, '/v1/chain/setup', { ...setup, keyring: 'BAD NAME' }, 'ERR_INVALID_ARGUMENT'],
        [ap, '/v1/chain/setup', { ...setup, mode: 'hom2' }, 'ERR_INVALID_ARGUMENT'],
        [ap, '/v1/chain/setup', { ...setup, ciphertext: '***' }, 'ERR_INVALID_ARGUMENT'],
        [ap, '/v1/chain/setup', { ...setup, managerVersion: 0 }, 'ERR_INVALID_ARGUMENT'],
        [ap, '/v1/chain/setup', { ...setup, masterVersion: 2 }, 'ERR_UNAUTHENTICATED'],
        [
          ap,
          '/v1/chain/setup',
          { ...setup, ciphertext: toB64u(new Uint8Array(64).fill(0xff)) },
          'ERR_DECODE',
        ],
        [ap, '/v1/chain/setup', { ...setup, ciphertext: toB64u(new Uint8Array(63)) }, 'ERR_DECODE'],
        [ap2, '/v1/chain/setup', setup, 'ERR_FORBIDDEN'], // b2 is not in this keyring's chain
        [anon, '/v1/chain/forward', env, 'ERR_UNAUTHENTICATED'],
        [ap, '/v1/chain/forward', { ...env, op: 'delete' }, 'ERR_INVALID_ARGUMENT'],
        [
          ap,
          '/v1/chain/forward',
          { ...env, nonce: toB64u(randomBytes(8)) },
          'ERR_INVALID_ARGUMENT',
        ],
        [ap, '/v1/chain/forward', { ...env, applianceId: 'ap-0000000000000000' }, 'ERR_FORBIDDEN'],
        [
          ap,
          '/v1/chain/forward',
          { ...env, itemId: toB64u(randomBytes(16)) },
          'ERR_UNAUTHENTICATED',
        ],
        [
          ap,
          '/v1/chain/forward',
          { ...env, ciphertext: toB64u(new Uint8Array(64).fill(0xff)) },
          'ERR_DECODE',
        ],
        [ap, '/v1/chain/forward', { ...env, keyring: 'no-such-keyring' }, 'ERR_NOT_FOUND'],
        // The signature covers the keyring: moving a request to another keyring is refused.
        [ap, '/v1/chain/forward', { ...env, keyring: 'outage' }, 'ERR_UNAUTHENTICATED'],
        [ap2, '/v1/chain/forward', env, 'ERR_FORBIDDEN'], // b2 is not in the chain
        [
          ap2,
          '/v1/chain/forward',
          await captureEnvelope(a, 'outage', h, 'outage'),
          'ERR_FORBIDDEN',
        ], // b2 is second
      ];
      for (const [client, path, body, code] of cases) {
        await rejectsWith(client.request('POST', path, body), code, undefined).catch((e) => {
          throw new Error(`${path} ${JSON.stringify(body).slice(0, 120)}: ${(e as Error).message}`);
        });
      }
      // A request for a key this blinder never set up.
      await m.op.request('POST', '/v1/keyrings', {
        name: 'fresh',
        mode: 'hom3',
        blinders: [ids[0]],
      });
      const envFresh = await captureEnvelope(a, 'rt-ec-elgamal-3', h, 'fresh');
      await rejectsWith(ap.request('POST', '/v1/chain/forward', envFresh), 'ERR_CONFLICT', /setup/);
      // Audit needs the blinder's operator token; health and readiness need nothing.
      await rejectsWith(anon.request('GET', '/v1/audit'), 'ERR_UNAUTHENTICATED');
      await rejectsWith(op.request('GET', '/v1/audit?limit=0'), 'ERR_INVALID_ARGUMENT');
      await rejectsWith(op.request('GET', '/v1/audit?bogus=1'), 'ERR_INVALID_ARGUMENT');
      await rejectsWith(op.request('GET', '/v1/nope'), 'ERR_NOT_FOUND');
      // An oversized body: refused from its Content-Length, before the body is read. The body
      // is not sent at all here: the server answers 413 and closes the connection, and a client
      // still writing 1.5 MB when it closes gets EPIPE instead of the answer (a race that failed
      // this test now and then).
      const tooLarge = await new Promise<{ status: number; code?: string }>((resolve, reject) => {
        const req = httpsRequest(
          `${b1.url}/v1/chain/setup`,
          {
            method: 'POST',
            ca: st.caPem,
            cert: st.certificatePem,
            key: st.identityKeyPem,
            headers: { 'content-type': 'application/json', 'content-length': '1500000' },
          },
          (res) => {
            const parts: Buffer[] = [];
            res.on('data', (d: Buffer) => parts.push(d));
            res.on('end', () => {
              const body = JSON.parse(Buffer.concat(parts).toString('utf8'));
              resolve({ status: res.statusCode ?? 0, code: body?.error?.code });
              req.destroy();
            });
          },
        );
        req.on('error', reject);
        req.flushHeaders();
      });
      assert.deepEqual(tooLarge, { status: 413, code: 'ERR_TOO_LARGE' });
      const audit = await op.request<{ entries: { action: string; outcome: string }[] }>(
        'GET',
        '/v1/audit',
      );
      assert.ok(audit.entries.some((e) => e.action === 'chain.recover' && e.outcome === 'ok'));
      assert.ok(audit.entries.some((e) => e.outcome === 'refused'));
      const ready = await anon.request<{ status: string }>('GET', '/ready');
      assert.equal(ready.status, 'ready');
    } finally {
      for (const c2 of [anon, ap, ap2, op]) c2.close();
    }
  });

  // Set by the stolen-state test below and reused by the fresh-process one that follows it.
  let loot: string | undefined;
  let stolenFile: { path: string; plain: Uint8Array; kek: Uint8Array; dek: Uint8Array };

  test('stolen state: no proper subset of locations recovers an item key; all of them do', async () => {
    // N = 3 (hom3: appliance, manager, b1), N = 4 (homN: + b2) and N = 5 (homN: + b2, b3).
    await m.op.request('POST', '/v1/keyrings', {
      name: 'steal3',
      mode: 'hom3',
      blinders: [ids[0]],
    });
    await m.op.request('POST', '/v1/keyrings', {
      name: 'steal4',
      mode: 'homN',
      blinders: ids.slice(0, 2),
    });
    await m.op.request('POST', '/v1/keyrings', {
      name: 'steal5',
      mode: 'homN',
      blinders: ids.slice(0, 3),
    });
    for (const k of ['steal3', 'steal4', 'steal5']) await a.initKeyring(k);
    const headers = {
      steal4: await newHeader(a, 'steal4'),
      steal5: await newHeader(a, 'steal5'),
    } as Record<string, DecodedHeader>;
    // A real file for hom3 (the fresh-process test decrypts it with `blindfold decrypt`).
    const plain = new Uint8Array(randomBytes(3000));
    const file = await newFile(a, 'steal3', join(dir, 'secret.bin.bf'), plain);
    headers.steal3 = file.header;
    stolenFile = { path: join(dir, 'secret.bin.bf'), plain, kek: file.kek, dek: file.dek };
    // Stop everything so that every store is complete on disk, then copy each location's state.
    for (const b of bs) await b.stop();
    await m.stop();
    loot = join(dir, 'loot');
    await cp(join(dir, 'manager'), join(loot, 'manager'), { recursive: true });
    await cp(join(dir, 'appliance'), join(loot, 'appliance'), { recursive: true });
    for (let i = 0; i < 3; i++) {
      await cp(bs[i]!.home, join(loot, `b${i + 1}`), { recursive: true });
    }
    const roots: Record<string, string> = {
      manager: mRoot,
      b1: bs[0]!.rootKey,
      b2: bs[1]!.rootKey,
      b3: bs[2]!.rootKey,
    };

    for (const [keyring, locs] of [
      ['steal3', ['appliance', 'manager', 'b1']],
      ['steal4', ['appliance', 'manager', 'b1', 'b2']],
      ['steal5', ['appliance', 'manager', 'b1', 'b2', 'b3']],
    ] as const) {
      const h = headers[keyring]!;
      const subsets = locs.map((_, skip) => locs.filter((__, i) => i !== skip));
      for (const have of subsets) {
        assert.equal(
          await attack(loot, roots, keyring, h, have),
          false,
          `${keyring}: ${have.join('+')} must not open the item`,
        );
      }
      assert.equal(
        await attack(loot, roots, keyring, h, locs),
        true,
        `${keyring}: all ${locs.length} locations open it`,
      );
    }
  });

  test('stolen state in fresh processes (hom3): any 2 of 3 locations fail, all 3 decrypt', async () => {
    // Each run copies the stolen directories again (store files, state files, pki, tokens) into a
    // new directory, points the copies at each other (the new manager's URL; a thief controls
    // their copies) and starts real processes from them under the stolen root keys. The missing
    // location is not running: its URL (the manager's, or the blinder's as last announced) refuses.
    assert.ok(loot, 'needs the stolen state of the previous test');
    const roots = { manager: mRoot, b1: bs[0]!.rootKey };
    const secrets = [stolenFile.kek, stolenFile.dek, stolenFile.plain];
    const locs = ['appliance', 'manager', 'b1'] as const;
    const runs = [...locs.map((_, skip) => locs.filter((__, i) => i !== skip)), [...locs]];
    let n = 0;
    for (const have of runs) {
      const all = have.length === locs.length;
      const run = join(dir, `thief-${n++}`);
      const procs: { stop(): Promise<unknown> }[] = [];
      const logs: (() => string)[] = [];
      try {
        for (const l of have) await cp(join(loot, l), join(run, l), { recursive: true });
        let managerUrl = 'https://127.0.0.1:1'; // refused: no manager at this location
        let mm: ManagerProcess | undefined;
        if (have.includes('manager')) {
          mm = await startManagerProcess({
            home: join(run, 'manager'),
            rootKey: roots.manager,
          });
          procs.push(mm);
          managerUrl = mm.url;
          logs.push(mm.stderr);
        }
        if (have.includes('b1')) {
          await repoint(join(run, 'b1', 'blinder.json'), managerUrl);
          const start = startBlinderProcess({
            home: join(run, 'b1'),
            id: ids[0]!,
            rootKey: roots.b1,
          });
          if (have.includes('manager')) {
            const b = await start;
            procs.push(b);
            logs.push(b.stderr);
          } else {
            // Without a manager the blinder cannot even start: it must announce itself first.
            await assert.rejects(start, /blinder exited|unavailable|ECONNREFUSED/i);
          }
        }
        if (have.includes('appliance')) {
          await repoint(join(run, 'appliance', 'appliance.json'), managerUrl);
          const app = await startApplianceProcess(join(run, 'appliance'));
          procs.push(app);
          logs.push(app.stderr);
        }
        const out = join(run, 'secret.bin');
        const r = await runCli(['decrypt', stolenFile.path, '-o', out, '--home', run]);
        if (all) {
          assert.equal(r.code, 0, r.stderr);
          assert.deepEqual(new Uint8Array(await readFile(out)), stolenFile.plain);
          continue;
        }
        const what = have.join('+');
        assert.notEqual(r.code, 0, `${what} must not decrypt`);
        // A clear error: a stable code and which location could not be reached / what is missing.
        assert.match(
          r.stderr,
          have.includes('appliance')
            ? /ERR_UNAVAILABLE|ERR_CRYPTO|unavailable|cannot reach/i
            : /no running appliance/,
          `${what}: ${r.stderr}`,
        );
        await assert.rejects(readFile(out), { code: 'ENOENT' }, `${what} wrote an output`);
        const outputs = [r.stdout, r.stderr];
        if (mm) {
          // Without the appliance, the thief's best use of the stolen operator token: enroll an
          // appliance of their own. The keyring's master exists, and only a member appliance can
          // vouch for a transfer of it (SPEC.md §5.7), so the new appliance cannot open the file.
          const own = await newAppliance(mm, join(run, 'appliance'), 'thief');
          try {
            await rejectsWith(own.initKeyring('steal3'), 'ERR_CONFLICT', /already has a master/);
          } finally {
            own.close();
          }
          const app = await startApplianceProcess(join(run, 'appliance'));
          procs.push(app);
          logs.push(app.stderr);
          const r2 = await runCli(['decrypt', stolenFile.path, '-o', out, '--home', run]);
          assert.notEqual(r2.code, 0, `${what} + an enrolled appliance must not decrypt`);
          assert.match(r2.stderr, /error \[ERR_[A-Z_]+\]/, r2.stderr);
          await assert.rejects(readFile(out), { code: 'ENOENT' });
          outputs.push(r2.stdout, r2.stderr);
        }
        const text = Buffer.from([...outputs, ...logs.map((l) => l())].join('\n'));
        for (const s of secrets) {
          for (const enc of encodingsOf(s)) {
            assert.equal(hasBytes(text, enc), false, `${what}: key or plaintext bytes in output`);
          }
        }
      } finally {
        for (const p of procs.reverse()) await p.stop();
      }
    }
  });
});

/** Encrypts `plain` into a real Blindfold file at `path` for a new item of `keyring`. */
async function newFile(a: Appliance, keyring: string, path: string, plain: Uint8Array) {
  const item = await a.newItem(keyring);
  const { dek, fileNonce } = freshFileSecrets();
  const header = sealHeader(nodeAesGcm, { ...item.fields, fileNonce }, item.kek, dek);
  await encryptStream([plain], createWriteStream(path), { header, dek, fileNonce });
  return { header: decodeHeader(header), kek: item.kek, dek };
}

/** Points a copied state file (appliance.json, blinder.json) at the copied manager's URL. */
async function repoint(stateFile: string, managerUrl: string): Promise<void> {
  const s = JSON.parse(await readFile(stateFile, 'utf8')) as { managerUrl: string };
  s.managerUrl = managerUrl;
  await writeFile(stateFile, JSON.stringify(s));
}

interface ApplianceProcess {
  stderr: () => string;
  stop(): Promise<unknown>;
}

/** Starts `blindfold appliance run` on a (copied) appliance home; waits for its local API. */
async function startApplianceProcess(home: string): Promise<ApplianceProcess> {
  const proc = spawn(process.execPath, [BIN, 'appliance', 'run', '--home', home, '--port', '0'], {
    env: { ...process.env, BLINDFOLD_LOG: 'warn', BLINDFOLD_CLUSTER_POLL_MS: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  proc.stdout!.resume();
  const exited = new Promise((r) => proc.once('exit', r));
  const stop = async () => {
    if (proc.exitCode === null) proc.kill('SIGTERM');
    return exited;
  };
  for (let i = 0; i < 400 && proc.exitCode === null; i++) {
    if (/local API on/.test(err)) return { stderr: () => err, stop };
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop();
  throw new Error(`appliance did not start: ${err}`);
}

/** Runs the `blindfold` CLI to completion (30 s at most). */
async function runCli(args: string[]) {
  const proc = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, BLINDFOLD_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  proc.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const timer = setTimeout(() => proc.kill('SIGKILL'), 30000);
  const code = await new Promise<number | null>((r) => proc.once('exit', r));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** Retries an assertion for a few seconds (caches of chains expire within 2 s). */
async function eventually(f: () => Promise<unknown>, ms = 6000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      await f();
      return;
    } catch (e) {
      if (Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** A signed chain request the appliance would send for a header (to replay or corrupt it). */
async function captureEnvelope(a: Appliance, keyring: string, h: DecodedHeader, as?: string) {
  const { chainMode, chainRequestStatement } = await import('../src/core/chain.ts');
  const { encodeEnvelope } = await import('../src/blinder/envelope.ts');
  const { createPrivateKey, sign } = await import('node:crypto');
  const ks = a.state.keyrings[keyring]!;
  const c = ks.concealments[0]!;
  const scheme = getScheme(ks.scheme);
  const pk = scheme.decodePublicKey(fromB64u(c.publicKey!));
  const { ciphertext, aux } = chainMode.request(
    scheme,
    pk,
    scheme.decodeCiphertext(pk, fromB64u(c.concealed)),
  );
  const fields = {
    op: 'recover' as const,
    applianceId: a.id,
    keyring: as ?? keyring,
    itemId: h.fields.itemId,
    masterVersion: h.fields.masterVersion,
    managerVersion: h.fields.managerKeyVersion,
    entropy: h.fields.itemData,
    ticket: h.fields.ticket,
    ttlSeconds: 0,
    aux: aux ?? new Uint8Array(0),
    issuedAt: Date.now(),
    nonce: new Uint8Array(randomBytes(16)),
  };
  const signature = new Uint8Array(
    sign('sha256', chainRequestStatement(fields), createPrivateKey(a.state.identityKeyPem)),
  );
  return encodeEnvelope({
    ...fields,
    signature,
    ciphertext: scheme.encodeCiphertext(pk, ciphertext),
  });
}

/**
 * The thief: opens every copied location it holds with fresh objects (stores, sealers under the
 * stolen root keys, the appliance's state file), combines what it can decrypt, fills in what it
 * lacks with its best guess (the neutral element, a random key), and tries the header's AEAD.
 */
async function attack(
  loot: string,
  roots: Record<string, string>,
  keyring: string,
  h: DecodedHeader,
  have: readonly string[],
): Promise<boolean> {
  const scheme = getScheme('ec-elgamal');
  const state = await loadState(join(loot, 'appliance')); // public part: the appliance id
  const applianceId = state.applianceId;
  let sk: unknown;
  let shareKey: Uint8Array = new Uint8Array(randomBytes(32));
  if (have.includes('manager')) {
    const store = openSqliteStore(join(loot, 'manager', 'blindfold.db'));
    const sealer = createSealer(fromB64u(roots.manager!));
    const rec = await store.getApplianceKey(applianceId, keyring, 1, 1);
    sk = scheme.decodeSecretKey(
      sealer.open(applianceSecretName(applianceId, keyring, 1, 1), rec!.sealedSecret),
    );
    const name = `keyring/${keyring}/v1/share`;
    shareKey = sealer.open(name, (await store.getSecret(name))!);
    await store.close();
  }
  const pk = sk ? scheme.publicKeyOf(sk) : scheme.generateKeyPair().publicKey;
  const guessSk = sk ?? scheme.generateKeyPair().secretKey;
  // M ⊕ R from the appliance's concealment, R_j from each blinder's E_j.
  let x = scheme.identity(pk);
  if (have.includes('appliance')) {
    const c = state.keyrings[keyring]!.concealments[0]!;
    x = scheme.decrypt(guessSk, scheme.decodeCiphertext(pk, fromB64u(c.concealed)));
  }
  for (const b of ['b1', 'b2', 'b3']) {
    if (!have.includes(b)) continue;
    const store = new BlinderStore(join(loot, b, 'blinder.db'));
    const rec = await store.getValue(applianceId, keyring, 1, 1);
    await store.close();
    if (!rec) continue; // not in this keyring's chain
    const sealer = createSealer(fromB64u(roots[b]!));
    const e = scheme.decodeCiphertext(
      pk,
      sealer.open(`blinder/${applianceId}/${keyring}/v1/m1`, rec.sealed),
    );
    x = scheme.op(pk, x, scheme.inv(pk, scheme.decrypt(guessSk, e)));
  }
  const ref: ItemRef = {
    keyring,
    itemId: h.fields.itemId,
    masterVersion: h.fields.masterVersion,
    managerVersion: h.fields.managerKeyVersion,
    entropy: h.fields.itemData,
  };
  const q = scheme.shareFromSeed(pk, shareSeed(shareKey, ref));
  if (scheme.equalPlaintext(x, scheme.identity(pk))) return false; // nothing to apply it to
  const secret = scheme.secretBytes(pk, scheme.applyShare(pk, x, q));
  try {
    openHeader(nodeAesGcm, h, itemKek(secret, ref));
    return true;
  } catch {
    return false;
  }
}
