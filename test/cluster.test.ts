/**
 * The appliance cluster (SPEC.md §5.7, issue #5), against a real manager process over mutual TLS:
 * enrollment by vouching criterion (i) (an invite by a member, bound to the newcomer's key) and
 * criterion (ii) (the credentials database), re-concealment transfers in hom2 / ec-elgamal,
 * hom2-opt / ec-elgamal and split / xor, any member decrypting what another encrypted, stolen
 * state (one member's, and the voucher's plus everything it saw), revocation under load, crash
 * safety of both ends of a transfer, a key-exposure scan over the whole enrollment, every
 * bad-input case, and one flow through real `blindfold appliance run` processes.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import {
  Appliance,
  type ApplianceState,
  enrollAppliance,
  loadState,
} from '../src/appliance/appliance.ts';
import { createJsonClient } from '../src/appliance/client.ts';
import { ClusterMember } from '../src/cluster/member.ts';
import {
  inviteId,
  membershipExtension,
  readMembershipClaim,
  verifyMembership,
} from '../src/cluster/membership.ts';
import { sealPackage } from '../src/cluster/package.ts';
import { fromB64u, fromUtf8, toB64u, toHex, utf8 } from '../src/core/bytes.ts';
import { BlindfoldError } from '../src/core/errors.ts';
import { sha256 } from '../src/core/hash.ts';
import { getSplitOperator } from '../src/core/operators.ts';
import { getScheme } from '../src/core/schemes/index.ts';
import { createSealer } from '../src/manager/seal.ts';
import { openSqliteStore } from '../src/store/sqlite.ts';
import { createCa, generateIdentity, issueCertificate } from '../src/tls/x509.ts';
import {
  BIN,
  cleanup,
  createKeyring,
  encodingsOf,
  hasBytes,
  type ManagerProcess,
  newAppliance,
  newRootKey,
  scanProcessMemory,
  startManagerProcess,
  tmpDir,
} from './helpers/deploy.ts';

type Code = string;
const code = (c: Code) => (e: Error & { code?: string }) => {
  assert.equal(e.code, c, e.message);
  return true;
};

const KEYRINGS: [name: string, mode: string, scheme: string][] = [
  ['hom2', 'hom2', 'ec-elgamal'],
  ['opt', 'hom2-opt', 'ec-elgamal'],
  ['split', 'split', 'xor'],
];

type Item = Awaited<ReturnType<Appliance['newItem']>>;
const header = (it: Item) => ({ fields: { ...it.fields, fileNonce: new Uint8Array(16) } }) as never;

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

/** An identity, its enrollment through the real API, and the resulting in-process appliance. */
async function enroll(
  m: ManagerProcess,
  dir: string,
  name: string,
  how: {
    token?: string;
    credential?: { kind: 'fingerprint' | 'secret' | 'attestation'; secret?: string };
  },
  identityKeyPem?: string,
  onItemSecret?: (k: string, s: Uint8Array) => void,
): Promise<Appliance> {
  const state = await enrollAppliance({
    dir,
    managerUrl: m.url,
    caPem: m.caPem,
    name,
    identityKeyPem,
    ...how,
  });
  return new Appliance({ dir, state, onItemSecret });
}

/** Raw HTTPS to the manager, for requests the clients would never make. */
function raw(
  m: ManagerProcess,
  method: string,
  path: string,
  body: unknown,
  o: { cert?: string; key?: string } = {},
): Promise<{ status: number; body: { error?: { code: string } } & Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const u = new URL(m.url);
    const req = https.request(
      {
        hostname: u.hostname,
        port: u.port,
        path,
        method,
        ca: m.caPem,
        cert: o.cert,
        key: o.key,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
      },
      (res) => {
        let t = '';
        res.on('data', (d) => {
          t += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: t ? JSON.parse(t) : {} }));
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

describe('appliance cluster: vouching, re-concealment, revocation (real manager process)', () => {
  let root: string;
  let mhome: string;
  let snapDir: string;
  let m: ManagerProcess;
  const rootKey = newRootKey();
  const dirs: Record<string, string> = {};
  const apps: Appliance[] = [];
  let A: Appliance;
  let B: Appliance;
  let C: Appliance;
  let mA: ClusterMember;
  let mB: ClusterMember;
  let mC: ClusterMember;
  const seeds: Record<string, Uint8Array> = {};
  const masters: Uint8Array[] = []; // the plain master keys (the test chose the key material)
  const itemSecrets: Uint8Array[] = [];
  // Everything A saw during transfers: request and response bodies, and the payloads it sealed.
  const seenByA: string[] = [];
  let bInviteToken: string;
  let bIdentity: ReturnType<typeof generateIdentity>;
  let cSecret: string;
  let tokenByB: string; // an invite B made before it was revoked

  const hook = (_k: string, s: Uint8Array) => itemSecrets.push(new Uint8Array(s));

  before(async () => {
    // Short cluster timings so that the crash tests do not wait 30 s (same code path).
    process.env.BLINDFOLD_CLAIM_TTL_MS = '1500';
    process.env.BLINDFOLD_VOUCHER_GRACE_MS = '300';
    root = await tmpDir('bf-cluster-');
    mhome = join(root, 'manager');
    await mkdir(mhome);
    snapDir = await tmpDir('bf-cluster-snap-');
    for (const n of ['a', 'b', 'c', 'd', 'e', 'g', 'x', 'p1', 'p2'])
      dirs[n] = await tmpDir(`bf-cl-${n}-`);
    m = await startManagerProcess({
      home: mhome,
      rootKey,
      cwd: snapDir,
      nodeArgs: ['--heapsnapshot-signal=SIGUSR2'],
    });
    for (const [name, mode, scheme] of KEYRINGS) await createKeyring(m, name, mode, scheme);
    await createKeyring(m, 'rsa', 'hom2', 'rsa');

    // A: vouched for by the operator; creates every keyring's first master (known material).
    A = await newAppliance(m, dirs.a!, 'a', hook);
    apps.push(A);
    for (const [name, mode, scheme] of KEYRINGS) {
      seeds[name] = new Uint8Array(randomBytes(32));
      await A.initKeyring(name, { importKey: seeds[name] });
      const st = await loadState(dirs.a!);
      if (mode === 'split') {
        masters.push(getSplitOperator(scheme).fromSeed(seeds[name]!));
      } else {
        const s = getScheme(scheme);
        const pk = s.decodePublicKey(fromB64u(st.keyrings[name]!.concealments[0]!.publicKey!));
        masters.push(s.encodePlaintext(pk, s.plaintextFromSeed(pk, seeds[name]!)));
      }
    }
    await A.initKeyring('rsa');
    // The voucher's view: its client traffic and what it sealed for newcomers (test-only hook).
    mA = new ClusterMember(A, { onPayload: (p) => seenByA.push(fromUtf8(p)) });
    // Everything A sees from here on is recorded (the "voucher's transcript").
    const orig = A.client.request.bind(A.client);
    A.client.request = (async (method: string, path: string, body?: unknown, o?: object) => {
      const out = await orig(method, path, body, o as never);
      if (path.startsWith('/v1/cluster/'))
        seenByA.push(JSON.stringify(body ?? null), JSON.stringify(out));
      return out;
    }) as typeof A.client.request;
  });

  after(async () => {
    for (const a of apps) a.close();
    await m?.stop();
    await cleanup(root, snapDir, ...Object.values(dirs));
  });

  test('criterion (i): a member invites, bound to the newcomer key; it is enrolled, then trusted by transfer', async () => {
    bIdentity = generateIdentity();
    const inv = await mA.invite({
      fingerprint: bIdentity.fingerprint,
      keyrings: KEYRINGS.map((k) => k[0]),
    });
    bInviteToken = inv.token;
    B = await enroll(m, dirs.b!, 'b', { token: inv.token }, bIdentity.keyPem, hook);
    apps.push(B);
    mB = new ClusterMember(B);
    const claim = readMembershipClaim(B.state.certificatePem);
    assert.equal(claim.vouchedBy, A.id);
    assert.equal(claim.criterion, 'token');
    assert.equal(claim.applianceId, B.id);
    assert.equal(
      verifyMembership(B.state.certificatePem, m.caPem).fingerprint,
      bIdentity.fingerprint,
    );
    // Enrolled, not trusted: no items yet (and no master to make them with).
    await assert.rejects(
      B.client.request('POST', '/v1/items', { keyring: 'hom2', masterVersion: 1 }),
      code('ERR_FORBIDDEN'),
    );
    const before = await m.op.request<{ members: { id: string; status: string }[] }>(
      'GET',
      '/v1/cluster/members',
    );
    assert.equal(before.members.find((x) => x.id === B.id)?.status, 'enrolled');
    // The voucher serves the three transfers; the newcomer receives them.
    assert.equal(await mA.step(), 3);
    assert.equal(await mB.step(), 3);
    for (const [k] of KEYRINGS) assert.ok(B.latestVersions(k));
    const after = await m.op.request<{
      members: {
        id: string;
        status: string;
        vouchedBy: string;
        criterion: string;
        history: { event: string }[];
      }[];
    }>('GET', '/v1/cluster/members');
    const b = after.members.find((x) => x.id === B.id)!;
    assert.equal(b.status, 'trusted');
    assert.equal(b.vouchedBy, A.id);
    assert.equal(b.criterion, 'token');
    assert.deepEqual(
      b.history.map((h) => h.event),
      ['vouched', 'trusted'],
    );
    const a = after.members.find((x) => x.id === A.id)!;
    assert.equal(a.criterion, 'operator');
    assert.deepEqual(
      a.history.map((h) => h.event),
      ['vouched', 'trusted'],
    );
  });

  test('criterion (ii): the credentials database vouches (pre-shared secret, stored hashed)', async () => {
    const out = await m.op.request<{ credential: { id: string; value: string }; secret: string }>(
      'POST',
      '/v1/cluster/credentials',
      { kind: 'secret', label: 'rack 7', keyrings: KEYRINGS.map((k) => k[0]) },
    );
    cSecret = out.secret;
    assert.match(cSecret, /^bf-psk-/);
    // Only SHA-256 of the secret is in the database.
    const db = await readFile(join(mhome, 'blindfold.db'));
    assert.equal(hasBytes(db, utf8(cSecret)), false);
    C = await enroll(
      m,
      dirs.c!,
      'c',
      { credential: { kind: 'secret', secret: cSecret } },
      undefined,
      hook,
    );
    apps.push(C);
    mC = new ClusterMember(C);
    const claim = readMembershipClaim(C.state.certificatePem);
    assert.equal(claim.vouchedBy, 'manager');
    assert.equal(claim.criterion, 'credential');
    // No appliance vouched: any trusted member holding the keyrings serves (here B, then A).
    const served = (await mB.step()) + (await mA.step());
    assert.equal(served, 3);
    assert.equal(await mC.step(), 3);
    const list = await m.op.request<{ credentials: { uses: number; value: string }[] }>(
      'GET',
      '/v1/cluster/credentials',
    );
    assert.equal(list.credentials[0]!.uses, 1);
    assert.ok(!list.credentials[0]!.value.includes(toHex(sha256(utf8(cSecret)))));
  });

  test('any member decrypts what another encrypted, in every mode', async () => {
    for (const [k] of KEYRINGS) {
      for (const maker of [A, B, C]) {
        const it = await maker.newItem(k);
        for (const reader of [A, B, C]) {
          assert.deepEqual(
            await reader.openItem(header(it)),
            it.kek,
            `${k}: ${maker.id} → ${reader.id}`,
          );
        }
      }
    }
  });

  test('each member conceals differently; one member state (or the voucher and its transcript) opens nothing', async () => {
    const store = openSqliteStore(join(mhome, 'blindfold.db'));
    const sealer = createSealer(fromB64u(rootKey));
    try {
      for (const [i, [k, mode, scheme]] of KEYRINGS.entries()) {
        const M = masters[i]!;
        const conc = (a: Appliance) => a.state.keyrings[k]!.concealments[0]!;
        const cA = conc(A);
        const cB = conc(B);
        const cC = conc(C);
        assert.notEqual(cA.concealed, cB.concealed);
        assert.notEqual(cB.concealed, cC.concealed);
        assert.notEqual(cA.concealed, cC.concealed);
        // The voucher saw what it sealed for B; B re-randomized: its state is not in the transcript.
        const transcript = utf8(seenByA.join('\n'));
        for (const enc of encodingsOf(fromB64u(cB.concealed))) {
          assert.equal(
            hasBytes(transcript, enc),
            false,
            `${k}: B's concealment is in A's transcript`,
          );
        }
        for (const enc of encodingsOf(M)) {
          assert.equal(hasBytes(transcript, enc), false, `${k}: the master is in A's transcript`);
        }
        const secretOf = async (a: Appliance) => {
          const rec = (await store.getApplianceKey(a.id, k, 1, 1))!;
          return sealer.open(`appliance/${a.id}/${k}/v1/m1`, rec.sealedSecret);
        };
        if (mode === 'split') {
          const op = getSplitOperator(scheme);
          const rA = await secretOf(A);
          const rB = await secretOf(B);
          // A's state and knowledge (its r_A, its δ) do not give B's concealment; r_B does.
          assert.notDeepEqual(op.op(fromB64u(cB.concealed), op.inv(rA)), M);
          assert.notDeepEqual(op.op(fromB64u(cA.concealed), op.inv(rB)), M);
          assert.deepEqual(op.op(fromB64u(cB.concealed), op.inv(rB)), M, 'r_B + B state open');
          assert.notDeepEqual(rA, rB);
        } else {
          const s = getScheme(scheme);
          const skA = s.decodeSecretKey(await secretOf(A));
          const skB = s.decodeSecretKey(await secretOf(B));
          const pkB = s.publicKeyOf(skB);
          assert.notEqual(cA.publicKey, cB.publicKey);
          const ctB = s.decodeCiphertext(pkB, fromB64u(cB.concealed));
          // d_A (the voucher's manager key) does not open B's concealment; d_B does.
          assert.notDeepEqual(s.encodePlaintext(pkB, s.decrypt(skA, ctB)), M);
          assert.deepEqual(s.encodePlaintext(pkB, s.decrypt(skB, ctB)), M, 'd_B + B state open');
          // A's state (Enc_{D_A}(M)) with d_B: nothing either.
          const ctA = s.decodeCiphertext(s.publicKeyOf(skA), fromB64u(cA.concealed));
          assert.notDeepEqual(s.encodePlaintext(pkB, s.decrypt(skB, ctA)), M);
        }
      }
    } finally {
      await store.close();
    }
  });

  test('bad input: replayed, expired, foreign and foreign-key tokens; other identities; unknown credentials', async () => {
    const refusedBefore = (
      await m.op.request<{ entries: unknown[] }>('GET', '/v1/audit?outcome=refused&limit=10000')
    ).entries.length;
    const count = async () =>
      (await m.op.request<{ appliances: unknown[] }>('GET', '/v1/appliances')).appliances.length;
    const n0 = await count();
    const try_ = (how: Parameters<typeof enroll>[3], pem?: string) =>
      enrollAppliance({
        dir: dirs.x!,
        managerUrl: m.url,
        caPem: m.caPem,
        name: 'x',
        identityKeyPem: pem,
        ...how,
      });
    // Replayed token (B's, used), foreign token (never issued here).
    await assert.rejects(try_({ token: bInviteToken }), code('ERR_UNAUTHENTICATED'));
    await assert.rejects(
      try_({ token: `bf-enroll-${toB64u(randomBytes(32))}` }),
      code('ERR_UNAUTHENTICATED'),
    );
    // Expired token: written into the store as the manager would, with a past expiry.
    const expired = `bf-enroll-${toB64u(randomBytes(32))}`;
    const db = new Database(join(mhome, 'blindfold.db'));
    db.pragma('busy_timeout = 5000');
    db.prepare(
      "INSERT INTO enrollments (token_hash, created_by, bound_fpr, expires_at, used_at, used_by, keyrings) VALUES (?, 'operator', NULL, ?, NULL, NULL, '[]')",
    ).run(toHex(sha256(utf8(expired))), Date.now() - 1000);
    db.close();
    await assert.rejects(try_({ token: expired }), code('ERR_UNAUTHENTICATED'));
    // A token bound to another key: refused, and NOT used up: its own key still enrolls with it.
    const d = generateIdentity();
    const bound = await mA.invite({ fingerprint: d.fingerprint, keyrings: ['hom2'] });
    await assert.rejects(try_({ token: bound.token }), code('ERR_UNAUTHENTICATED'));
    // A newcomer presenting another's identity: A's public key, without A's private key.
    const stolen = await raw(m, 'POST', '/v1/appliances/enroll', {
      token: bound.token,
      name: 'mallory',
      publicKey: toB64u(new Uint8Array(verifyMembership(A.state.certificatePem, m.caPem).spkiDer)),
      proof: toB64u(new Uint8Array(72)),
    });
    assert.equal(stolen.status, 401);
    assert.equal(stolen.body.error?.code, 'ERR_UNAUTHENTICATED');
    // Credentials not in the database: an unknown secret, a key not allow-listed, attestation.
    await assert.rejects(
      try_({ credential: { kind: 'secret', secret: 'bf-psk-not-in-the-db-xx' } }),
      code('ERR_UNAUTHENTICATED'),
    );
    await assert.rejects(
      try_({ credential: { kind: 'secret', secret: cSecret } }),
      code('ERR_UNAUTHENTICATED'),
    ); // used up
    await assert.rejects(
      try_({ credential: { kind: 'fingerprint' } }),
      code('ERR_UNAUTHENTICATED'),
    );
    await assert.rejects(
      enrollAppliance({
        dir: dirs.x!,
        managerUrl: m.url,
        caPem: m.caPem,
        name: 'x',
        credential: { kind: 'attestation', document: utf8('{"instance":"i-1"}') },
      }),
      code('ERR_UNAUTHENTICATED'),
    );
    // Nothing changed, and every refusal is in the audit log with its code.
    assert.equal(await count(), n0);
    const refused = (
      await m.op.request<{ entries: { action: string; code: string }[] }>(
        'GET',
        '/v1/audit?outcome=refused&limit=10000',
      )
    ).entries.slice(refusedBefore);
    const enrollRefusals = refused.filter((e) => e.action === 'appliance.enroll');
    assert.equal(enrollRefusals.length, 9);
    assert.ok(enrollRefusals.every((e) => e.code === 'ERR_UNAUTHENTICATED'));
    // The bound token still works for its own key (the refusals did not use it up).
    const D = await enroll(m, dirs.d!, 'd', { token: bound.token }, d.keyPem);
    apps.push(D);
    assert.equal(await count(), n0 + 1);
    // An allow-listed key enrolls; the same entry does not enroll twice.
    const e = generateIdentity();
    await m.op.request('POST', '/v1/cluster/credentials', {
      kind: 'fingerprint',
      value: e.fingerprint,
    });
    const E = await enroll(m, dirs.e!, 'e', { credential: { kind: 'fingerprint' } }, e.keyPem);
    apps.push(E);
    assert.equal(readMembershipClaim(E.state.certificatePem).criterion, 'credential');
    // Vouching by an untrusted (enrolled only) member: no invite, no serving, no package.
    const mD = new ClusterMember(D);
    await assert.rejects(mD.invite({}), code('ERR_FORBIDDEN'));
    const t = await E.client.request<{ id: string }>('POST', '/v1/cluster/transfers', {
      keyring: 'hom2',
    });
    await assert.rejects(
      D.client.request('POST', `/v1/cluster/transfers/${t.id}/claim`),
      code('ERR_FORBIDDEN'),
    );
    const audit = await m.op.request<{
      entries: { actor: string; action: string; code: string }[];
    }>('GET', `/v1/audit?actor=${D.id}&outcome=refused`);
    assert.deepEqual(
      audit.entries.map((x) => `${x.action} ${x.code}`),
      ['enrollment.create ERR_FORBIDDEN', 'transfer.claim ERR_FORBIDDEN'],
    );
    // rsa keyrings cannot move between appliances: refused with a clear message.
    await assert.rejects(mA.invite({ keyrings: ['rsa'] }), code('ERR_UNSUPPORTED_SCHEME'));
    await assert.rejects(
      E.client.request('POST', '/v1/cluster/transfers', { keyring: 'rsa' }),
      (err: BlindfoldError) => err.code === 'ERR_UNSUPPORTED_SCHEME' && /import/.test(err.message),
    );
    // A member vouches only for keyrings it holds (D holds none) — and B makes an invite now, used
    // after B's revocation below.
    tokenByB = (await mB.invite({ keyrings: ['hom2'] })).token;
  });

  test('forged and expired certificates are refused by the manager and by members', async () => {
    // A certificate for A's key from another CA: the TLS layer does not authorize it.
    const rogue = createCa('rogue CA', 10);
    const forged = issueCertificate({
      ca: rogue,
      subjectPublicKey: verifyMembership(A.state.certificatePem, m.caPem).spkiDer,
      commonName: A.id,
      usage: 'client',
      validDays: 10,
    });
    let r = await raw(m, 'GET', '/v1/cluster/work', undefined, {
      cert: forged,
      key: A.state.identityKeyPem,
    });
    assert.equal(r.status, 401);
    assert.equal(r.body.error?.code, 'ERR_UNAUTHENTICATED');
    // An expired certificate from the right CA (the test reads the CA key from the manager's home).
    const ca = {
      certPem: m.caPem,
      keyPem: await readFile(join(mhome, 'pki', 'ca.key'), 'utf8'),
    };
    const old = new Date(Date.now() - 10 * 86400_000);
    const expired = issueCertificate({
      ca,
      subjectPublicKey: verifyMembership(A.state.certificatePem, m.caPem).spkiDer,
      commonName: A.id,
      usage: 'client',
      validDays: 1,
      now: old,
      notAfter: new Date(old.getTime() + 86400_000),
    });
    r = await raw(m, 'GET', '/v1/cluster/work', undefined, {
      cert: expired,
      key: A.state.identityKeyPem,
    });
    assert.equal(r.status, 401);
    // Members refuse both too.
    assert.throws(() => verifyMembership(forged, m.caPem), code('ERR_UNAUTHENTICATED'));
    assert.throws(() => verifyMembership(expired, m.caPem), code('ERR_UNAUTHENTICATED'));

    // The manager is the CA: a manager that slipped its own key in for the newcomer B would
    // get a certificate past verifyMembership. The voucher pinned B's key in its invite and
    // refuses (before any re-concealment), as it refuses a newcomer it never invited.
    for (const invite of [inviteId(bInviteToken), '0'.repeat(32)]) {
      const substitute = issueCertificate({
        ca,
        subjectPublicKey: generateIdentity().spkiDer,
        commonName: B.id,
        usage: 'client',
        validDays: 1,
        extra: [
          membershipExtension({
            v: 1,
            applianceId: B.id,
            vouchedBy: A.id,
            criterion: 'token',
            issuedAt: Date.now(),
            invite,
          }),
        ],
      });
      verifyMembership(substitute, m.caPem); // a valid membership certificate...
      const stub = new Appliance({ dir: dirs.a!, state: A.state });
      const calls: string[] = [];
      stub.client.request = (async (_method: string, path: string) => {
        calls.push(path.split('/').pop()!);
        if (path.endsWith('/claim')) {
          return {
            id: `tr-${'0'.repeat(24)}`,
            target: B.id,
            keyring: 'hom2',
            mode: 'hom2',
            scheme: 'ec-elgamal',
            targetCertificatePem: substitute,
            claimTtlMs: 30000,
            versions: [],
          };
        }
        return { ok: true };
      }) as typeof stub.client.request;
      await assert.rejects(
        new ClusterMember(stub).serve(`tr-${'0'.repeat(24)}`),
        code('ERR_UNAUTHENTICATED'),
      );
      assert.deepEqual(calls, ['claim', 'release'], '...refused before any re-concealment');
      stub.close();
    }

    // A package from a "member" whose certificate is forged: the newcomer refuses it, the refusal
    // is audited, the transfer reopens, and the newcomer's state does not change.
    const gId = generateIdentity();
    const inv = await mA.invite({ fingerprint: gId.fingerprint, keyrings: ['hom2', 'split'] });
    const G = await enroll(m, dirs.g!, 'g', { token: inv.token }, gId.keyPem, hook);
    apps.push(G);
    const tr = await G.client.request<{ receive: { id: string; keyring: string }[] }>(
      'GET',
      '/v1/cluster/work',
    );
    const t = tr.receive.find((x) => x.keyring === 'split')!;
    await A.client.request('POST', `/v1/cluster/transfers/${t.id}/claim`);
    const conc = A.state.keyrings.split!.concealments[0]!;
    await A.client.request('POST', `/v1/cluster/transfers/${t.id}/reencrypt`, {
      masterVersion: conc.masterVersion,
      managerVersion: conc.managerVersion,
      delta: toB64u(new Uint8Array(32).fill(7)),
    });
    const forgedSender = issueCertificate({
      ca: rogue,
      subjectPublicKey: verifyMembership(A.state.certificatePem, m.caPem).spkiDer,
      commonName: A.id,
      usage: 'client',
      validDays: 10,
    });
    const pkg = sealPackage({
      transferId: t.id,
      payload: utf8('{}'),
      recipientSpki: gId.spkiDer,
      senderKeyPem: A.state.identityKeyPem,
      senderCertificatePem: forgedSender,
    });
    await A.client.request('POST', `/v1/cluster/transfers/${t.id}/package`, {
      package: toB64u(pkg),
    });
    const stateBefore = await readFile(join(dirs.g!, 'appliance.json'), 'utf8');
    const mG = new ClusterMember(G);
    const view = await G.client.request<{ id: string; status: string; package?: string }>(
      'GET',
      `/v1/cluster/transfers/${t.id}`,
    );
    await assert.rejects(mG.receive(view as never), code('ERR_UNAUTHENTICATED'));
    assert.equal(await readFile(join(dirs.g!, 'appliance.json'), 'utf8'), stateBefore);
    const again = await G.client.request<{ status: string }>(
      'GET',
      `/v1/cluster/transfers/${t.id}`,
    );
    assert.equal(again.status, 'pending');
    const rejects = await m.op.request<{ entries: { code: string; item: string }[] }>(
      'GET',
      '/v1/audit?action=transfer.reject',
    );
    assert.ok(rejects.entries.some((e) => e.item === t.id && e.code === 'ERR_UNAUTHENTICATED'));
  });

  test('crash safety: a voucher that dies mid-transfer is replaced; a newcomer that dies before its ack keeps nothing', async () => {
    const G = apps.find((a) => a.state.name === 'g')!;
    const mG = new ClusterMember(G);
    const work = await G.client.request<{
      receive: { id: string; keyring: string; status: string }[];
    }>('GET', '/v1/cluster/work');
    const hom = work.receive.find((x) => x.keyring === 'hom2')!;
    // The voucher claims and re-conceals one version, then "crashes" (never sends the package).
    await A.client.request('POST', `/v1/cluster/transfers/${hom.id}/claim`);
    const scheme = getScheme('ec-elgamal');
    const cA = A.state.keyrings.hom2!.concealments[0]!;
    const pkA = scheme.decodePublicKey(fromB64u(cA.publicKey!));
    const blinded = scheme.transfer!.blind(
      pkA,
      scheme.decodeCiphertext(pkA, fromB64u(cA.concealed)),
    );
    await A.client.request('POST', `/v1/cluster/transfers/${hom.id}/reencrypt`, {
      masterVersion: 1,
      managerVersion: 1,
      blinded: toB64u(scheme.encodeCiphertext(pkA, blinded.ciphertext)),
    });
    // G stays enrolled with nothing; nobody else may take the claim before it lapses.
    const status = async () =>
      (
        await m.op.request<{ members: { id: string; status: string }[] }>(
          'GET',
          '/v1/cluster/members',
        )
      ).members.find((x) => x.id === G.id)!.status;
    assert.equal(await status(), 'enrolled');
    assert.deepEqual(Object.keys(G.state.keyrings), []);
    await assert.rejects(
      C.client.request('POST', `/v1/cluster/transfers/${hom.id}/claim`),
      code('ERR_CONFLICT'),
    );
    // No temporary file anywhere: only the state files.
    for (const dir of [dirs.a!, dirs.g!]) {
      const names = (await readdir(dir)).filter((f) => f !== 'appliance.json');
      assert.deepEqual(names, [], `${dir}: ${names.join(', ')}`);
    }
    await new Promise((r) => setTimeout(r, 1700)); // the claim lapses (1.5 s in this test)
    // Another member serves both transfers (the split one was reopened by G's refusal).
    assert.ok((await mC.step()) >= 2);
    for (const t of (
      await G.client.request<{ receive: { status: string }[] }>('GET', '/v1/cluster/work')
    ).receive) {
      assert.equal(t.status, 'sealed');
    }
    // G "crashes" between storing and acknowledging the first transfer: the ack never arrives.
    const orig = G.client.request.bind(G.client);
    let failAcks = 1;
    G.client.request = (async (method: string, path: string, body?: unknown, o?: object) => {
      if (path.endsWith('/ack') && failAcks-- > 0) {
        throw new BlindfoldError('ERR_UNAVAILABLE', 'simulated crash before the ack');
      }
      return orig(method, path, body, o as never);
    }) as typeof G.client.request;
    await mG.step(); // one receive fails (pending kept), the other completes
    const pending = Object.values(G.state.keyrings)
      .flatMap((k) => k.concealments)
      .filter((c) => c.pending);
    assert.equal(pending.length, 1, 'one concealment waits for its acknowledgement');
    // A pending concealment is never used.
    const pendingKeyring = Object.entries(G.state.keyrings).find(([, k]) =>
      k.concealments.some((c) => c.pending),
    )![0];
    await assert.rejects(G.newItem(pendingKeyring), code('ERR_NOT_FOUND'));
    G.client.request = orig;
    // "Restart": the pending concealment is dropped (the transfer was not acknowledged) and the
    // package, still at the manager, is received again.
    const restarted = new Appliance({ dir: dirs.g!, state: await loadState(dirs.g!) });
    apps.push(restarted);
    assert.equal(await new ClusterMember(restarted).step(), 1);
    assert.equal(await status(), 'trusted');
    for (const k of ['hom2', 'split']) {
      const it = await A.newItem(k);
      assert.deepEqual(await restarted.openItem(header(it)), it.kek);
    }
  });

  test('revocation under load: the revoked member fails with ERR_REVOKED, the others never fail', async () => {
    const errors: string[] = [];
    const items: Item[] = [
      await A.newItem('hom2'),
      await C.newItem('opt'),
      await A.newItem('split'),
    ];
    let stop = false;
    const work = async (a: Appliance) => {
      let n = 0;
      while (!stop) {
        try {
          const it = await a.newItem(KEYRINGS[n % 3]![0]);
          await a.openItem(header(it));
          await a.openItem(header(items[n % 3]!));
        } catch (e) {
          errors.push(`${a.id}: ${(e as Error).message}`);
        }
        n++;
      }
      return n;
    };
    const bResults: string[] = [];
    const bWork = (async () => {
      while (!stop) {
        try {
          await B.openItem(header(items[0]!));
          bResults.push('ok');
        } catch (e) {
          bResults.push((e as BlindfoldError).code);
        }
      }
    })();
    const runs = [work(A), work(C)];
    await new Promise((r) => setTimeout(r, 400));
    await m.op.request('POST', `/v1/appliances/${B.id}/revoke`);
    await new Promise((r) => setTimeout(r, 600));
    stop = true;
    const counts = await Promise.all(runs);
    await bWork;
    assert.deepEqual(errors, []);
    assert.ok(
      counts.every((n) => n > 2),
      `work continued: ${counts}`,
    );
    assert.ok(bResults.includes('ok'));
    assert.equal(bResults[bResults.length - 1], 'ERR_REVOKED');
    // B's stolen state (a copy, with its certificate) is useless: refused before any work.
    const thief = new Appliance({
      dir: dirs.x!,
      state: (await loadState(dirs.b!)) as ApplianceState,
    });
    apps.push(thief);
    await assert.rejects(thief.openItem(header(items[2]!)), code('ERR_REVOKED'));
    // The manager destroyed B's keys: even with B's state, d_B is gone.
    const store = openSqliteStore(join(mhome, 'blindfold.db'));
    try {
      assert.deepEqual(await store.listApplianceKeys(B.id), []);
    } finally {
      await store.close();
    }
    // A revoked member's invites die with it (vouching by a revoked member), and nothing changes.
    await assert.rejects(
      enrollAppliance({
        dir: dirs.x!,
        managerUrl: m.url,
        caPem: m.caPem,
        name: 'x',
        token: tokenByB,
      }),
      code('ERR_REVOKED'),
    );
    await assert.rejects(mB.invite({}), code('ERR_REVOKED'));
    const members = await m.op.request<{ members: { id: string; history: { event: string }[] }[] }>(
      'GET',
      '/v1/cluster/members',
    );
    assert.deepEqual(
      members.members.find((x) => x.id === B.id)!.history.map((h) => h.event),
      ['vouched', 'trusted', 'revoked'],
    );
  });

  test('a flow through real processes: appliance run serves, appliance init --token receives', async () => {
    const env = { ...process.env, BLINDFOLD_CLUSTER_POLL_MS: '200', BLINDFOLD_LOG: 'warn' };
    const run = (args: string[]) =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const p = spawn(process.execPath, [BIN, ...args], {
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        let err = '';
        p.stdout!.on('data', (d) => {
          out += d;
        });
        p.stderr!.on('data', (d) => {
          err += d;
        });
        p.on('exit', (c) => resolve({ code: c, out, err }));
      });
    const daemons: ChildProcess[] = [];
    const daemon = async (dir: string) => {
      const p = spawn(process.execPath, [BIN, 'appliance', 'run', '--home', dir, '--port', '0'], {
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      daemons.push(p);
      let err = '';
      p.stderr!.on('data', (d) => {
        err += d;
      });
      for (let i = 0; i < 200 && !/local API on/.test(err); i++)
        await new Promise((r) => setTimeout(r, 50));
      assert.match(err, /local API on/);
      const info = JSON.parse(await readFile(join(dir, 'local.json'), 'utf8')) as { url: string };
      const token = (await readFile(join(dir, 'local-api.token'), 'utf8')).trim();
      return createJsonClient({ baseUrl: info.url, token });
    };
    const caFile = join(root, 'ca.pem');
    await writeFile(caFile, m.caPem);
    await createKeyring(m, 'proc', 'hom2-opt', 'ec-elgamal');
    try {
      // P1: vouched for by the operator (CLI), makes the master, runs as a daemon.
      let r = await run(['cluster', 'invite', '--operator', '--home', root]);
      assert.equal(r.code, 0, r.err);
      const opToken = r.out.trim();
      r = await run([
        'appliance',
        'init',
        '--home',
        dirs.p1!,
        '--manager',
        m.url,
        '--ca',
        caFile,
        '--token',
        opToken,
        '--keyring',
        'proc',
        '--name',
        'p1',
      ]);
      assert.equal(r.code, 0, r.err);
      const l1 = await daemon(dirs.p1!);
      // P2: makes its identity first; P1 (through its local API) invites it, bound to that key.
      r = await run(['appliance', 'identity', '--home', dirs.p2!]);
      assert.equal(r.code, 0, r.err);
      const fpr = r.out.trim();
      assert.match(fpr, /^[0-9a-f]{64}$/);
      r = await run([
        'cluster',
        'invite',
        '--appliance',
        dirs.p1!,
        '--keyring',
        'proc',
        '--fingerprint',
        fpr,
        '--home',
        root,
      ]);
      assert.equal(r.code, 0, r.err);
      r = await run([
        'appliance',
        'init',
        '--home',
        dirs.p2!,
        '--manager',
        m.url,
        '--ca',
        caFile,
        '--token',
        r.out.trim(),
        '--keyring',
        'proc',
        '--name',
        'p2',
        '--wait',
        '30',
      ]);
      assert.equal(r.code, 0, r.err);
      assert.match(r.err, /received the master of keyring "proc"/);
      const l2 = await daemon(dirs.p2!);
      // P1 makes a data key, P2 opens it (and the other way round).
      const k1 = await l1.request<{ header: string; dek: string }>('POST', '/v1/datakey', {
        keyring: 'proc',
      });
      const o2 = await l2.request<{ dek: string }>('POST', '/v1/datakey/open', {
        header: k1.header,
      });
      assert.equal(o2.dek, k1.dek);
      const k2 = await l2.request<{ header: string; dek: string }>('POST', '/v1/datakey', {
        keyring: 'proc',
      });
      assert.equal(
        (await l1.request<{ dek: string }>('POST', '/v1/datakey/open', { header: k2.header })).dek,
        k2.dek,
      );
      l1.close();
      l2.close();
      // The operator sees who vouched for whom.
      r = await run(['cluster', 'members', '--json', '--home', root]);
      assert.equal(r.code, 0, r.err);
      const ms = JSON.parse(r.out) as {
        members: { name: string; vouchedBy: string; criterion: string; status: string }[];
      };
      const p1 = ms.members.find((x) => x.name === 'p1')!;
      const p2 = ms.members.find((x) => x.name === 'p2')!;
      assert.equal(p1.criterion, 'operator');
      assert.equal(p2.criterion, 'token');
      assert.equal(p2.status, 'trusted');
      assert.match(p2.vouchedBy, /^ap-/);
      // A newcomer nobody serves: a clear, bounded failure naming who must run.
      r = await run(['cluster', 'invite', '--operator', '--keyring', 'proc', '--home', root]);
      const lonely = r.out.trim();
      for (const p of daemons) p.kill('SIGTERM');
      r = await run([
        'appliance',
        'init',
        '--home',
        dirs.x!,
        '--manager',
        m.url,
        '--ca',
        caFile,
        '--token',
        lonely,
        '--keyring',
        'proc',
        '--name',
        'lonely',
        '--wait',
        '1',
      ]);
      assert.equal(r.code, 1);
      assert.match(r.err, /ERR_UNAVAILABLE.*trusted member holding keyring proc/);
    } finally {
      for (const p of daemons) if (p.exitCode === null) p.kill('SIGTERM');
    }
  });

  test('key exposure: no master-key bytes in any state file, the manager database, heap or memory', async () => {
    const needles = [...masters, ...itemSecrets].flatMap(encodingsOf);
    assert.ok(itemSecrets.length > 20);
    const files = [
      ...(await filesUnder(mhome)),
      ...(await Promise.all(Object.values(dirs).map(filesUnder))).flat(),
    ];
    assert.ok(files.some((f) => f.endsWith('blindfold.db')));
    for (const f of files) {
      const data = new Uint8Array(await readFile(f));
      for (const n of needles) assert.equal(hasBytes(data, n), false, `${f} holds key bytes`);
    }
    const before = new Set(await readdir(snapDir));
    m.proc.kill('SIGUSR2');
    let snap: string | undefined;
    for (let i = 0; i < 200 && !snap; i++) {
      await new Promise((r) => setTimeout(r, 100));
      snap = (await readdir(snapDir)).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
    }
    assert.ok(snap, 'heap snapshot written');
    let data = new Uint8Array(0);
    for (let i = 0; i < 100; i++) {
      data = new Uint8Array(await readFile(join(snapDir, snap!)));
      if (data.length > 0 && data[data.length - 1] === 0x7d) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(data.length > 100000);
    for (const n of needles)
      assert.equal(hasBytes(data, n), false, 'heap snapshot holds key bytes');
    assert.equal(await scanProcessMemory(m.proc.pid!, masters), 0, 'manager memory holds a master');
    assert.ok((await scanProcessMemory(process.pid, [masters[0]!])) > 0, 'the memory scan works');
  });
});

describe('criterion (ii) by attestation: the pluggable verifier', () => {
  test('a document the configured verifier accepts, with its subject in the database, enrolls; others do not', async () => {
    const { startManager } = await import('../src/manager/run.ts');
    const { createHmac } = await import('node:crypto');
    const home = await tmpDir('bf-att-');
    const dir = await tmpDir('bf-att-a-');
    // A stand-in for a platform's attestation format: a MAC by the "platform" over the subject
    // and the identity fingerprint it vouches for (a real verifier checks a signature chain).
    const platformKey = randomBytes(32);
    const doc = (subject: string, fingerprint: string) =>
      utf8(
        JSON.stringify({
          subject,
          fingerprint,
          mac: createHmac('sha256', platformKey).update(`${subject}|${fingerprint}`).digest('hex'),
        }),
      );
    const verifier = {
      name: 'test-mac',
      async verify(document: Uint8Array, ctx: { identityFingerprint: string }) {
        const d = JSON.parse(fromUtf8(document)) as {
          subject: string;
          fingerprint: string;
          mac: string;
        };
        const mac = createHmac('sha256', platformKey)
          .update(`${d.subject}|${d.fingerprint}`)
          .digest('hex');
        if (mac !== d.mac || d.fingerprint !== ctx.identityFingerprint) {
          throw new BlindfoldError('ERR_UNAUTHENTICATED', 'attestation does not verify');
        }
        return d.subject;
      },
    };
    const m = await startManager({
      home,
      rootKey: randomBytes(32),
      port: 0,
      attestation: verifier,
    });
    const op = createJsonClient({ baseUrl: m.url, caPem: m.caPem, token: m.operatorToken });
    try {
      await op.request('POST', '/v1/cluster/credentials', { kind: 'attestation', value: 'vm-1' });
      const go = (subject: string, signedFor: string, pem: string) =>
        enrollAppliance({
          dir,
          managerUrl: m.url,
          caPem: m.caPem,
          name: 'vm',
          identityKeyPem: pem,
          credential: { kind: 'attestation', document: doc(subject, signedFor) },
        });
      const id = generateIdentity();
      // Not in the database; bound to another key: refused, nothing used up.
      await assert.rejects(go('vm-2', id.fingerprint, id.keyPem), code('ERR_UNAUTHENTICATED'));
      await assert.rejects(
        go('vm-1', generateIdentity().fingerprint, id.keyPem),
        code('ERR_UNAUTHENTICATED'),
      );
      const st = await go('vm-1', id.fingerprint, id.keyPem);
      const claim = readMembershipClaim(st.certificatePem);
      assert.equal(claim.vouchedBy, 'manager');
      assert.equal(claim.criterion, 'credential');
    } finally {
      op.close();
      await m.close();
      await cleanup(home, dir);
    }
  });
});
