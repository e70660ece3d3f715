/**
 * The KMS API end to end (SPEC.md §11) through real processes: a manager and an appliance process
 * serving /kms/v1, driven by the SDK. Every operation in every mode; client-blinded keys in hom2 and
 * hom2-opt (and their clear refusal elsewhere); envelopes; every refusal with its stable code and
 * no change of state; the per-application rate limit; the OpenAPI document and reference page.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { toB64u } from '../src/core/bytes.ts';
import { BlindfoldError } from '../src/core/errors.ts';
import { decodeBlob } from '../src/core/kms.ts';
import { KMS_ROUTES } from '../src/kms/api.ts';
import { decrypt, encrypt, KmsClient, type KmsError } from '../src/sdk/node.ts';
import { BIN, cleanup, tmpDir } from './helpers/deploy.ts';
import { type KmsDeployment, startKmsDeployment } from './helpers/kms.ts';

const run = promisify(execFile);

// A "day" of a deletion window: long enough for a CLI round trip, short enough to wait out 7.
const DAY_MS = 1000;
process.env.BLINDFOLD_DELETION_DAY_MS = String(DAY_MS);

async function refused(p: Promise<unknown>, code: string, status?: number, match?: RegExp) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof BlindfoldError, String(e));
    assert.equal(e.code, code, e.message);
    if (status !== undefined) assert.equal((e as KmsError).status, status);
    if (match) assert.match(e.message, match);
    return true;
  });
}

const ALL = [
  'create-key',
  'describe',
  'generate-data-key',
  'decrypt',
  'encrypt',
  're-encrypt',
  'manage',
];

function counts(d: KmsDeployment) {
  const db = new Database(join(d.home, 'blindfold.db'), { readonly: true });
  try {
    const n = (sql: string) => (db.prepare(sql).get() as { n: number }).n;
    return {
      items: n('SELECT count(*) AS n FROM items'),
      keyrings: n('SELECT count(*) AS n FROM keyrings'),
      refusals: n("SELECT count(*) AS n FROM audit WHERE outcome = 'refused'"),
    };
  } finally {
    db.close();
  }
}

describe('KMS API', () => {
  let d: KmsDeployment;
  let kms: KmsClient;
  let appId: string;
  let doomed: Uint8Array;
  let doomedAt: number;

  before(async () => {
    d = await startKmsDeployment();
    const app = await d.newApp('orders', ALL);
    appId = app.appId;
    kms = new KmsClient({ endpoint: d.url, token: app.token, retries: 0 });
    // A key whose deletion window runs while the other tests do (checked near the end).
    await kms.createKey({ keyId: 'k-doomed', mode: 'hom2-opt' });
    doomed = (await kms.generateDataKey({ keyId: 'k-doomed' })).ciphertextBlob;
    doomedAt = (await kms.scheduleKeyDeletion('k-doomed', 7)).deletionAt!;
    await refused(
      kms.decrypt({ ciphertextBlob: doomed }),
      'ERR_FORBIDDEN',
      403,
      /scheduled for deletion/,
    );
  });
  after(async () => {
    await d?.stop();
  });

  const modes: {
    keyId: string;
    mode: 'split' | 'hom2' | 'hom2-opt';
    scheme?: string;
    blinded: boolean;
  }[] = [
    { keyId: 'k-split', mode: 'split', blinded: false },
    { keyId: 'k-hom2', mode: 'hom2', blinded: true },
    { keyId: 'k-opt', mode: 'hom2-opt', blinded: true },
    { keyId: 'k-paillier', mode: 'hom2-opt', scheme: 'paillier', blinded: false },
  ];

  for (const m of modes) {
    test(`every operation, ${m.mode}${m.scheme ? ` ${m.scheme}` : ''}`, async () => {
      const key = await kms.createKey({ keyId: m.keyId, mode: m.mode, scheme: m.scheme });
      assert.equal(key.keyId, m.keyId);
      assert.equal(key.status, 'enabled');
      assert.equal(key.keyVersion, 1);
      assert.equal(key.clientBlinded, m.blinded);
      const ctx = { tenant: 't1', purpose: 'test' };

      // GenerateDataKey / Decrypt
      const dk = await kms.generateDataKey({ keyId: m.keyId, context: ctx });
      assert.equal(dk.plaintext!.length, 32);
      const back = await kms.decrypt({ ciphertextBlob: dk.ciphertextBlob, context: ctx });
      assert.deepEqual(back.plaintext, dk.plaintext);
      assert.equal(back.keyId, m.keyId);
      const wrappedOnly = await kms.generateDataKey({ keyId: m.keyId, includePlaintext: false });
      assert.equal(wrappedOnly.plaintext, undefined);
      assert.equal(
        (await kms.decrypt({ ciphertextBlob: wrappedOnly.ciphertextBlob })).plaintext.length,
        32,
      );

      // Encrypt / Decrypt of a small payload
      const data = new TextEncoder().encode(`hello ${m.keyId}`);
      const enc = await kms.encrypt({ keyId: m.keyId, plaintext: data, context: ctx });
      assert.deepEqual(
        (await kms.decrypt({ ciphertextBlob: enc.ciphertextBlob, context: ctx })).plaintext,
        data,
      );

      // Rotation: a new version for new ciphertexts; old ones still open.
      const rotated = await kms.rotateKey(m.keyId);
      assert.equal(rotated.keyVersion, 2);
      const dk2 = await kms.generateDataKey({ keyId: m.keyId, context: ctx });
      assert.equal(dk2.keyVersion, 2);
      assert.deepEqual(
        (await kms.decrypt({ ciphertextBlob: dk.ciphertextBlob, context: ctx })).plaintext,
        dk.plaintext,
      );

      // ReEncrypt to the key's newest version and to another key, plaintext staying inside.
      const re = await kms.reEncrypt({
        ciphertextBlob: enc.ciphertextBlob,
        sourceContext: ctx,
        destinationKeyId: m.keyId,
        destinationContext: { tenant: 't2' },
      });
      assert.equal(re.keyVersion, 2);
      assert.equal(re.sourceKeyId, m.keyId);
      assert.deepEqual(
        (await kms.decrypt({ ciphertextBlob: re.ciphertextBlob, context: { tenant: 't2' } }))
          .plaintext,
        data,
      );

      // Describe, list
      const desc = await kms.describeKey(m.keyId);
      assert.equal(desc.keyVersion, 2);
      assert.ok(Array.isArray(desc.versions));
      assert.ok((await kms.listKeys()).some((k) => k.keyId === m.keyId));

      // Envelope helpers
      const env = await encrypt(kms, new Uint8Array(100_000).fill(7), {
        keyId: m.keyId,
        context: ctx,
      });
      const opened = await decrypt(kms, env, { expectContext: { tenant: 't1' } });
      assert.deepEqual(opened.data, new Uint8Array(100_000).fill(7));
      assert.deepEqual(opened.context, ctx);

      // Client-blinded keys
      if (m.blinded) {
        const cb = await kms.generateClientBlindedDataKey({ keyId: m.keyId, context: ctx });
        assert.equal(cb.plaintext.length, 32);
        assert.equal(decodeBlob(cb.ciphertextBlob).kind, 'client-blinded');
        const again = await kms.decrypt({ ciphertextBlob: cb.ciphertextBlob, context: ctx });
        assert.deepEqual(again.plaintext, cb.plaintext);
        await refused(
          kms.decrypt({ ciphertextBlob: cb.ciphertextBlob, context: { tenant: 'other' } }),
          'ERR_DECRYPT',
          400,
        );
        const env2 = await encrypt(kms, new Uint8Array([1, 2, 3]), {
          keyId: m.keyId,
          context: ctx,
          clientBlinded: true,
        });
        assert.deepEqual((await decrypt(kms, env2)).data, new Uint8Array([1, 2, 3]));
        await refused(
          kms.reEncrypt({
            ciphertextBlob: cb.ciphertextBlob,
            sourceContext: ctx,
            destinationKeyId: m.keyId,
          }),
          'ERR_INVALID_ARGUMENT',
          400,
          /client-blinded/,
        );
      } else {
        await refused(
          kms.generateClientBlindedDataKey({ keyId: m.keyId, context: ctx }),
          'ERR_UNSUPPORTED_SCHEME',
          400,
          /ec-elgamal/,
        );
      }

      // Disable / enable
      assert.equal((await kms.disableKey(m.keyId)).status, 'disabled');
      await refused(kms.generateDataKey({ keyId: m.keyId }), 'ERR_FORBIDDEN', 403, /disabled/);
      await refused(
        kms.decrypt({ ciphertextBlob: dk.ciphertextBlob, context: ctx }),
        'ERR_FORBIDDEN',
        403,
      );
      assert.equal((await kms.enableKey(m.keyId)).status, 'enabled');

      // Schedule and cancel deletion
      const sched = await kms.scheduleKeyDeletion(m.keyId, 7);
      assert.ok(sched.deletionAt! > Date.now());
      await refused(
        kms.decrypt({ ciphertextBlob: dk.ciphertextBlob, context: ctx }),
        'ERR_FORBIDDEN',
        403,
        /scheduled for deletion/,
      );
      assert.equal((await kms.cancelKeyDeletion(m.keyId)).deletionAt, null);
      assert.deepEqual(
        (await kms.decrypt({ ciphertextBlob: dk.ciphertextBlob, context: ctx })).plaintext,
        dk.plaintext,
      );
    });
  }

  test('refusals: each with its stable code, and nothing changes', async () => {
    const ctx = { a: '1' };
    const dk = await kms.generateDataKey({ keyId: 'k-hom2', context: ctx });
    const other = await kms.generateDataKey({ keyId: 'k-opt', context: ctx });
    const before = counts(d);

    // wrong context: refused at the manager's ticket check (and AES-GCM would fail too)
    await refused(
      kms.decrypt({ ciphertextBlob: dk.ciphertextBlob, context: { a: '2' } }),
      'ERR_DECRYPT',
      400,
    );
    await refused(kms.decrypt({ ciphertextBlob: dk.ciphertextBlob }), 'ERR_DECRYPT', 400);
    // wrong key: named explicitly, or a blob whose key field was changed
    await refused(
      kms.decrypt({ ciphertextBlob: dk.ciphertextBlob, context: ctx, keyId: 'k-opt' }),
      'ERR_INVALID_ARGUMENT',
      400,
      /made with key k-hom2/,
    );
    const moved = other.ciphertextBlob.slice();
    // same-length key ids: "k-opt" → "k-hom" is not a key; use the hom2 blob's item under k-opt's name
    const swapped = Buffer.from(dk.ciphertextBlob).toString('latin1').replace('k-hom2', 'k-opt2');
    await refused(
      kms.decrypt({ ciphertextBlob: new Uint8Array(Buffer.from(swapped, 'latin1')), context: ctx }),
      'ERR_NOT_FOUND',
    );
    moved[moved.length - 1]! ^= 1; // tampered AEAD tag
    await refused(kms.decrypt({ ciphertextBlob: moved, context: ctx }), 'ERR_DECRYPT', 400);

    // token without the scope
    const narrow = await d.newApp('narrow', ['describe']);
    await d.policy('k-hom2', [
      {
        applicationId: appId,
        operations: ['describe', 'generate-data-key', 'decrypt', 'encrypt', 're-encrypt', 'manage'],
      },
      { applicationId: narrow.appId, operations: ['describe', 'decrypt'] },
    ]);
    const nk = new KmsClient({ endpoint: d.url, token: narrow.token, retries: 0 });
    await refused(
      nk.decrypt({ ciphertextBlob: dk.ciphertextBlob, context: ctx }),
      'ERR_FORBIDDEN',
      403,
      /lacks the scope "decrypt"/,
    );
    assert.equal((await nk.describeKey('k-hom2')).keyId, 'k-hom2');
    // token of another application: scope yes, but the key's policy does not name it
    const stranger = await d.newApp('stranger', ALL);
    const sk = new KmsClient({ endpoint: d.url, token: stranger.token, retries: 0 });
    await refused(
      sk.decrypt({ ciphertextBlob: dk.ciphertextBlob, context: ctx }),
      'ERR_FORBIDDEN',
      403,
      /policy must grant/,
    );
    await refused(sk.generateDataKey({ keyId: 'k-hom2' }), 'ERR_FORBIDDEN', 403);
    await refused(sk.disableKey('k-hom2'), 'ERR_FORBIDDEN', 403);
    assert.deepEqual(await sk.listKeys(), []);
    // revoked token, unknown token, no token
    await d.m.op.request('POST', `/v1/kms/tokens/${stranger.tokenId}/revoke`);
    await refused(sk.listKeys(), 'ERR_UNAUTHENTICATED', 401, /revoked/);
    const fake = new KmsClient({
      endpoint: d.url,
      token: `bf-app-${toB64u(new Uint8Array(32))}`,
      retries: 0,
    });
    await refused(fake.listKeys(), 'ERR_UNAUTHENTICATED', 401);
    const noAuth = await fetch(`${d.url}/kms/v1/keys`);
    assert.equal(noAuth.status, 401);
    assert.equal(
      ((await noAuth.json()) as { error: { code: string } }).error.code,
      'ERR_UNAUTHENTICATED',
    );
    // disabled application
    await d.m.op.request('POST', `/v1/kms/applications/${narrow.appId}/status`, {
      status: 'disabled',
    });
    await refused(nk.describeKey('k-hom2'), 'ERR_FORBIDDEN', 403, /disabled/);

    // oversized payloads and malformed JSON
    await refused(
      kms.encrypt({ keyId: 'k-hom2', plaintext: new Uint8Array(4097) }),
      'ERR_TOO_LARGE',
      413,
      /4096/,
    );
    const post = (body: string) =>
      fetch(`${d.url}/kms/v1/generate-data-key`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${(kms as unknown as { o: { token: string } }).o.token}`,
          'content-type': 'application/json',
        },
        body,
      });
    let r = await post(JSON.stringify({ keyId: 'k-hom2', context: { x: 'y'.repeat(70_000) } }));
    assert.equal(r.status, 413);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'ERR_TOO_LARGE');
    r = await post('{"keyId": "k-hom2",');
    assert.equal(r.status, 400);
    assert.equal(
      ((await r.json()) as { error: { code: string } }).error.code,
      'ERR_INVALID_ARGUMENT',
    );
    r = await post(JSON.stringify({ keyId: 'k-hom2', extra: 1 }));
    assert.equal(r.status, 400);
    r = await post(
      JSON.stringify({
        keyId: 'k-hom2',
        context: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])),
      }),
    );
    assert.equal(r.status, 400);
    r = await post(JSON.stringify({ keyId: 'k-hom2', clientKey: toB64u(new Uint8Array(32)) }));
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'ERR_IDENTITY');
    r = await post(
      JSON.stringify({ keyId: 'k-hom2', clientKey: toB64u(new Uint8Array(32).fill(0xff)) }),
    );
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'ERR_DECODE');

    const afterCounts = counts(d);
    assert.equal(afterCounts.items, before.items, 'no item was created by a refused call');
    assert.equal(afterCounts.keyrings, before.keyrings);
    assert.ok(afterCounts.refusals > before.refusals, 'refusals are audited');

    // the audit names the application
    const audit = await d.m.op.request<{
      entries: { actor: string; action: string; outcome: string; code: string | null }[];
    }>('GET', '/v1/audit?limit=10000');
    assert.ok(
      audit.entries.some(
        (e) => e.actor === appId && e.action === 'kms.generate-data-key' && e.outcome === 'ok',
      ),
    );
    assert.ok(
      audit.entries.some(
        (e) => e.actor === stranger.appId && e.outcome === 'refused' && e.code === 'ERR_FORBIDDEN',
      ),
    );
  });

  test('manager KMS routes: bad operator input and unauthenticated relays are refused', async () => {
    const op = d.m.op;
    await refused(op.request('POST', '/v1/kms/applications', { name: '' }), 'ERR_INVALID_ARGUMENT');
    await refused(op.request('POST', '/v1/kms/applications', { name: 'orders' }), 'ERR_CONFLICT');
    await refused(
      op.request('POST', '/v1/kms/applications/app-0000000000000000/tokens', {
        scopes: ['decrypt'],
      }),
      'ERR_NOT_FOUND',
    );
    await refused(
      op.request('POST', `/v1/kms/applications/${appId}/tokens`, { scopes: ['root'] }),
      'ERR_INVALID_ARGUMENT',
    );
    await refused(
      op.request('POST', `/v1/kms/applications/${appId}/tokens`, { scopes: [] }),
      'ERR_INVALID_ARGUMENT',
    );
    await refused(
      op.request('PUT', '/v1/kms/keys/k-hom2/policy', {
        grants: [{ applicationId: appId, operations: ['everything'] }],
      }),
      'ERR_INVALID_ARGUMENT',
    );
    await refused(op.request('PUT', '/v1/kms/keys/nope/policy', { grants: [] }), 'ERR_NOT_FOUND');
    await refused(
      op.request('POST', '/v1/kms/tokens/tok-0000000000000000/revoke', {}),
      'ERR_NOT_FOUND',
    );
    // Without the operator token, and the relay routes without an appliance certificate.
    const res = await fetch(`${d.url}/kms/v1/keys`, {
      headers: { authorization: 'Bearer bf-op-x' },
    });
    assert.equal(res.status, 401);
    const { createJsonClient } = await import('../src/appliance/client.ts');
    const anon = createJsonClient({ baseUrl: d.m.url, caPem: d.m.caPem, retries: 0 });
    try {
      await refused(anon.request('GET', '/v1/kms/applications'), 'ERR_UNAUTHENTICATED');
      await refused(
        anon.request('POST', '/v1/kms/keys', { appToken: 'bf-app-xxxxxxxx', action: 'list' }),
        'ERR_UNAUTHENTICATED',
      );
    } finally {
      anon.close();
    }
    const policy = await op.request<{ grants: { applicationId: string }[] }>(
      'GET',
      '/v1/kms/keys/k-hom2/policy',
    );
    assert.ok(policy.grants.some((g) => g.applicationId === appId));
  });

  test('a deleted key: its ciphertexts are gone for good', async () => {
    await new Promise((r) => setTimeout(r, Math.max(0, doomedAt + 1200 - Date.now())));
    await refused(kms.decrypt({ ciphertextBlob: doomed }), 'ERR_FORBIDDEN', 403, /deleted/);
    await refused(kms.generateDataKey({ keyId: 'k-doomed' }), 'ERR_FORBIDDEN', 403, /deleted/);
    assert.equal(
      (await d.m.op.request<{ status: string }>('GET', '/v1/keyrings/k-doomed')).status,
      'deleted',
    );
  });

  test('operator CLI: blindfold kms app/token/policy and keys delete/undelete', async () => {
    const h = await tmpDir();
    await symlink(d.home, join(h, 'manager'));
    const cli = async (...args: string[]) =>
      run(process.execPath, [BIN, ...args, '--home', h, '--manager', d.m.url], {
        timeout: 60_000,
      });
    try {
      // Each call starts a process: few calls, each checking what it printed.
      const [id] = (await cli('kms', 'app', 'create', 'cli-app')).stdout.trim().split('\t');
      assert.match(id!, /^app-[0-9a-f]{16}$/);
      const created = await cli(
        'kms',
        'token',
        'create',
        id!,
        '--scope',
        'describe',
        '--scope',
        'decrypt',
      );
      const token = created.stdout.trim();
      assert.match(token, /^bf-app-/);
      const tokId = /token (tok-[0-9a-f]{16})/.exec(created.stderr)?.[1];
      assert.ok(tokId, created.stderr);
      const set = await cli(
        'kms',
        'policy',
        'set',
        'k-opt',
        `${appId}=describe,manage`,
        `${id}=describe`,
      );
      assert.match(set.stdout, new RegExp(`${id}\tdescribe`));
      assert.match(set.stdout, new RegExp(`${appId}\tdescribe,manage`));
      const viaCli = new KmsClient({ endpoint: d.url, token, retries: 0 });
      assert.equal((await viaCli.describeKey('k-opt')).keyId, 'k-opt');
      await cli('kms', 'token', 'revoke', tokId);
      await refused(viaCli.describeKey('k-opt'), 'ERR_UNAUTHENTICATED', 401);
      assert.match((await cli('keys', 'delete', 'k-opt', '--days', '30')).stdout, /unusable now/);
      assert.notEqual((await kms.describeKey('k-opt')).deletionAt, null);
      assert.match((await cli('keys', 'undelete', 'k-opt')).stdout, /cancelled/);
      assert.equal((await kms.describeKey('k-opt')).deletionAt, null);
      await assert.rejects(cli('kms', 'token', 'create', id!), /ERR_INVALID_ARGUMENT/);
    } finally {
      await cleanup(h);
    }
  });

  test('OpenAPI document and reference page are served from the route table', async () => {
    const doc = await kms.openApi();
    const paths = doc.paths as Record<string, Record<string, { operationId: string }>>;
    const ids = Object.values(paths).flatMap((p) => Object.values(p).map((o) => o.operationId));
    assert.deepEqual(ids.sort(), KMS_ROUTES.map((r) => r.operationId).sort());
    assert.equal(doc.openapi, '3.1.0');
    const html = await (await fetch(`${d.url}/kms/v1/docs`)).text();
    for (const id of ids) assert.ok(html.includes(id), `docs mention ${id}`);
    assert.ok(html.startsWith('<!doctype html>'));
  });
});

describe('KMS rate limit (per application token bucket)', () => {
  let d: KmsDeployment;
  before(async () => {
    process.env.BLINDFOLD_KMS_RATE = '2';
    process.env.BLINDFOLD_KMS_BURST = '2';
    try {
      d = await startKmsDeployment();
    } finally {
      delete process.env.BLINDFOLD_KMS_RATE;
      delete process.env.BLINDFOLD_KMS_BURST;
    }
  });
  after(async () => {
    await d?.stop();
  });

  test('a burst beyond the bucket gets 429 ERR_RATE_LIMITED with Retry-After; the SDK waits and retries', async () => {
    const app = await d.newApp('busy', ALL);
    const other = await d.newApp('calm', ALL);
    const raw = () =>
      fetch(`${d.url}/kms/v1/keys`, { headers: { authorization: `Bearer ${app.token}` } });
    const statuses: number[] = [];
    let limited: Response | undefined;
    for (let i = 0; i < 4; i++) {
      const r = await raw();
      statuses.push(r.status);
      if (r.status === 429) limited = r;
    }
    assert.deepEqual(statuses.slice(0, 2), [200, 200]);
    assert.ok(limited, `some call was limited: ${statuses}`);
    assert.equal(
      ((await limited.json()) as { error: { code: string } }).error.code,
      'ERR_RATE_LIMITED',
    );
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    // Another application has its own bucket.
    const calm = new KmsClient({ endpoint: d.url, token: other.token, retries: 0 });
    assert.deepEqual(await calm.listKeys(), []);
    // The SDK honours Retry-After and gets through.
    const patient = new KmsClient({ endpoint: d.url, token: app.token, retries: 4, backoffMs: 50 });
    const t0 = Date.now();
    assert.deepEqual(await patient.listKeys(), []);
    assert.ok(Date.now() - t0 >= 0);
    const impatient = new KmsClient({ endpoint: d.url, token: app.token, retries: 0 });
    await raw();
    await raw();
    await refused(impatient.listKeys(), 'ERR_RATE_LIMITED', 429);
  });
});
