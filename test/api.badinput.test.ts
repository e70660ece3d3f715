/**
 * Bad input to every manager route gets a 4xx with a stable code and changes nothing: malformed
 * JSON, wrong lengths, identity and non-canonical points, unknown versions, forged, expired,
 * missing and foreign tickets, unauthenticated and revoked callers. Never a 500.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, test } from 'node:test';
import type { Appliance } from '../src/appliance/appliance.ts';
import { toB64u } from '../src/core/bytes.ts';
import { generateIdentity } from '../src/tls/x509.ts';
import {
  cleanup,
  createKeyring,
  type ManagerProcess,
  newAppliance,
  newRootKey,
  startManagerProcess,
  tmpDir,
} from './helpers/deploy.ts';

interface Reply {
  status: number;
  body: { error?: { code: string; message: string } } & Record<string, unknown>;
}

function raw(
  m: ManagerProcess,
  method: string,
  path: string,
  body: string | undefined,
  o: { cert?: string; key?: string; token?: string; contentType?: string } = {},
): Promise<Reply> {
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
        headers: {
          ...(body !== undefined ? { 'content-type': o.contentType ?? 'application/json' } : {}),
          ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
        },
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
    req.end(body);
  });
}

describe('manager API: bad input is refused with a stable code', () => {
  let m: ManagerProcess;
  let home: string;
  let adir: string;
  let bdir: string;
  let a: Appliance;
  let b: Appliance;
  let item: Awaited<ReturnType<Appliance['newItem']>>;
  let other: Awaited<ReturnType<Appliance['newItem']>>;

  before(async () => {
    home = await tmpDir();
    adir = await tmpDir();
    bdir = await tmpDir();
    m = await startManagerProcess({ home, rootKey: newRootKey() });
    await createKeyring(m, 'default', 'hom2', 'ec-elgamal');
    a = await newAppliance(m, adir, 'a');
    b = await newAppliance(m, bdir, 'b');
    await a.initKeyring('default');
    item = await a.newItem('default');
    other = await a.newItem('default', { ttlSeconds: 1 });
  });
  after(async () => {
    a?.close();
    b?.close();
    await m?.stop();
    await cleanup(home, adir, bdir);
  });

  const asA = () => ({ cert: a.state.certificatePem, key: a.state.identityKeyPem });
  const recoverBody = (over: Record<string, unknown> = {}) =>
    JSON.stringify({
      keyring: 'default',
      itemId: toB64u(item.fields.itemId),
      masterVersion: 1,
      managerVersion: 1,
      entropy: toB64u(item.fields.itemData),
      ticket: toB64u(item.fields.ticket),
      blinded: toB64u(new Uint8Array(64).fill(0)),
      ...over,
    });

  test('appliance routes: each malformed request gets its code', async () => {
    const idPoint = toB64u(new Uint8Array(64)); // identity points
    const nonCanonical = toB64u(new Uint8Array(64).fill(0xff)); // not a canonical encoding
    const forged = new Uint8Array(item.fields.ticket);
    forged[40]! ^= 1;
    const cases: [string, string | undefined, number, string][] = [
      ['malformed JSON', '{"keyring": ', 400, 'ERR_INVALID_ARGUMENT'],
      ['empty body', '', 400, 'ERR_INVALID_ARGUMENT'],
      [
        'wrong item id length',
        recoverBody({ itemId: toB64u(new Uint8Array(15)) }),
        400,
        'ERR_INVALID_ARGUMENT',
      ],
      ['not base64url', recoverBody({ ticket: 'a+b/c=' }), 400, 'ERR_INVALID_ARGUMENT'],
      ['unknown field', recoverBody({ extra: 1 }), 400, 'ERR_INVALID_ARGUMENT'],
      ['identity points', recoverBody({ blinded: idPoint }), 400, 'ERR_IDENTITY'],
      ['non-canonical points', recoverBody({ blinded: nonCanonical }), 400, 'ERR_DECODE'],
      [
        'short ciphertext',
        recoverBody({ blinded: toB64u(new Uint8Array(63).fill(1)) }),
        400,
        'ERR_DECODE',
      ],
      ['unknown manager version', recoverBody({ managerVersion: 9 }), 404, 'ERR_NOT_FOUND'],
      ['unknown keyring', recoverBody({ keyring: 'nope' }), 404, 'ERR_NOT_FOUND'],
      ['forged ticket', recoverBody({ ticket: toB64u(forged) }), 403, 'ERR_TICKET_INVALID'],
      [
        'ticket of another item',
        recoverBody({ ticket: toB64u(other.fields.ticket) }),
        403,
        'ERR_TICKET_INVALID',
      ],
      ['missing ticket', recoverBody({ ticket: undefined }), 400, 'ERR_INVALID_ARGUMENT'],
      [
        'truncated ticket',
        recoverBody({ ticket: toB64u(item.fields.ticket.subarray(0, 20)) }),
        400,
        'ERR_DECODE',
      ],
      [
        'other entropy',
        recoverBody({ entropy: toB64u(new Uint8Array(16)) }),
        403,
        'ERR_TICKET_INVALID',
      ],
    ];
    for (const [name, body, status, code] of cases) {
      const r = await raw(m, 'POST', '/v1/recover', body, asA());
      assert.equal(r.status, status, `${name}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error?.code, code, name);
      assert.ok(r.body.error!.message.length > 5, `${name}: a message a person can act on`);
    }
    // The ticket that was refused above for other items still works for its own.
    await a.openItem({ fields: { ...item.fields, fileNonce: new Uint8Array(16) } } as never);
  });

  test('expired ticket', async () => {
    await new Promise((r) => setTimeout(r, 2100));
    const body = JSON.stringify({
      keyring: 'default',
      itemId: toB64u(other.fields.itemId),
      masterVersion: 1,
      managerVersion: 1,
      entropy: toB64u(other.fields.itemData),
      ticket: toB64u(other.fields.ticket),
      blinded: toB64u(new Uint8Array(64).fill(0)),
    });
    const r = await raw(m, 'POST', '/v1/recover', body, asA());
    assert.equal(r.status, 403);
    assert.equal(r.body.error?.code, 'ERR_TICKET_EXPIRED');
  });

  test('callers: no certificate, no operator token, wrong token, revoked appliance', async () => {
    let r = await raw(m, 'POST', '/v1/recover', recoverBody());
    assert.equal(r.status, 401);
    assert.equal(r.body.error?.code, 'ERR_UNAUTHENTICATED');
    r = await raw(m, 'GET', '/v1/keyrings', undefined);
    assert.equal(r.status, 401);
    r = await raw(m, 'GET', '/v1/keyrings', undefined, { token: 'bf-op-wrong' });
    assert.equal(r.status, 401);
    r = await raw(
      m,
      'POST',
      '/v1/appliances/enroll',
      JSON.stringify({
        token: 'bf-enroll-x',
        name: 'z',
        publicKey: toB64u(generateIdentity().spkiDer),
      }),
    );
    assert.equal(r.status, 401);
    assert.equal(r.body.error?.code, 'ERR_UNAUTHENTICATED');
    // Revoke b: its certificate is refused from now on, before any work.
    r = await raw(m, 'POST', `/v1/appliances/${b.id}/revoke`, undefined, {
      token: m.operatorToken,
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    r = await raw(m, 'POST', '/v1/recover', recoverBody(), {
      cert: b.state.certificatePem,
      key: b.state.identityKeyPem,
    });
    assert.equal(r.status, 403);
    assert.equal(r.body.error?.code, 'ERR_REVOKED');
    // Refused before any service method ran, and still audited (SPEC.md §7.1, §8).
    let audited = false;
    for (let i = 0; i < 20 && !audited; i++) {
      const log = await raw(m, 'GET', `/v1/audit?actor=${b.id}&outcome=refused`, undefined, {
        token: m.operatorToken,
      });
      const entries = (log.body as { entries?: { code: string }[] }).entries ?? [];
      audited = entries.some((e) => e.code === 'ERR_REVOKED');
      if (!audited) await new Promise((res) => setTimeout(res, 50));
    }
    assert.ok(audited, 'the revoked caller is in the audit log with ERR_REVOKED');
  });

  test('operator routes: bad keyring input', async () => {
    const op = { token: m.operatorToken };
    const cases: [string, string, string, number, string][] = [
      [
        'POST',
        '/v1/keyrings',
        JSON.stringify({ name: 'Bad Name', mode: 'hom2' }),
        400,
        'ERR_INVALID_ARGUMENT',
      ],
      [
        'POST',
        '/v1/keyrings',
        JSON.stringify({ name: 'x', mode: 'hom9' }),
        400,
        'ERR_UNSUPPORTED_SCHEME',
      ],
      [
        'POST',
        '/v1/keyrings',
        JSON.stringify({ name: 'x', mode: 'hom2', scheme: 'dsa' }),
        400,
        'ERR_UNSUPPORTED_SCHEME',
      ],
      [
        'POST',
        '/v1/keyrings',
        JSON.stringify({ name: 'default', mode: 'hom2' }),
        409,
        'ERR_CONFLICT',
      ],
      ['GET', '/v1/keyrings/none', '', 404, 'ERR_NOT_FOUND'],
      ['POST', '/v1/appliances/ap-0000000000000000/revoke', '', 404, 'ERR_NOT_FOUND'],
      ['GET', '/v1/audit?limit=abc', '', 400, 'ERR_INVALID_ARGUMENT'],
      ['GET', '/v1/nowhere', '', 404, 'ERR_NOT_FOUND'],
    ];
    for (const [method, path, body, status, code] of cases) {
      const r = await raw(m, method, path, body || undefined, op);
      assert.equal(r.status, status, `${method} ${path}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error?.code, code, `${method} ${path}`);
    }
  });

  test('console routes: bad input and wrong callers change nothing', async () => {
    const op = { token: m.operatorToken };
    const { createPrivateKey, sign } = await import('node:crypto');
    const { importKeyStatement } = await import('../src/core/imports.ts');
    const ik = new Uint8Array(32).fill(9);
    const sig = (data: Uint8Array, keyPem = a.state.identityKeyPem) =>
      toB64u(
        new Uint8Array(
          sign('sha256', data, { key: createPrivateKey(keyPem), dsaEncoding: 'ieee-p1363' }),
        ),
      );
    const good = JSON.stringify({
      publicKey: toB64u(ik),
      signature: sig(importKeyStatement(a.id, ik)),
    });
    const cases: [string, string, string | undefined, Record<string, string>, number, string][] = [
      ['GET', '/v1/metrics/history', undefined, {}, 401, 'ERR_UNAUTHENTICATED'],
      ['GET', '/v1/metrics/history?since=abc', undefined, op, 400, 'ERR_INVALID_ARGUMENT'],
      ['GET', '/v1/appliances/presence', undefined, {}, 401, 'ERR_UNAUTHENTICATED'],
      ['GET', '/v1/blinders/health', undefined, {}, 401, 'ERR_UNAUTHENTICATED'],
      [
        'GET',
        '/v1/blinders/health',
        undefined,
        { authorization: 'Bearer bf-op-wrong' },
        401,
        'ERR_UNAUTHENTICATED',
      ],
      ['PUT', '/v1/import-key', good, {}, 401, 'ERR_UNAUTHENTICATED'],
      // Signed for another appliance id, or by another key: refused.
      [
        'PUT',
        '/v1/import-key',
        JSON.stringify({ publicKey: toB64u(ik), signature: sig(importKeyStatement(b.id, ik)) }),
        asA(),
        401,
        'ERR_UNAUTHENTICATED',
      ],
      [
        'PUT',
        '/v1/import-key',
        JSON.stringify({
          publicKey: toB64u(ik),
          signature: sig(importKeyStatement(a.id, ik), generateIdentity().keyPem),
        }),
        asA(),
        401,
        'ERR_UNAUTHENTICATED',
      ],
      [
        'PUT',
        '/v1/import-key',
        JSON.stringify({ publicKey: toB64u(ik.subarray(1)), signature: 'AA' }),
        asA(),
        400,
        'ERR_INVALID_ARGUMENT',
      ],
      ['GET', `/v1/appliances/${a.id}/import-key`, undefined, op, 404, 'ERR_NOT_FOUND'],
      [
        'POST',
        '/v1/keyrings/default/imports/prepare',
        JSON.stringify({ applianceId: a.id, expected: 1 }),
        op,
        404,
        'ERR_NOT_FOUND',
      ],
      [
        'POST',
        '/v1/keyrings/default/imports/prepare',
        JSON.stringify({ applianceId: 'a', expected: 1 }),
        op,
        400,
        'ERR_INVALID_ARGUMENT',
      ],
      [
        'POST',
        '/v1/keyrings/default/imports',
        JSON.stringify({
          applianceId: a.id,
          masterVersion: 1,
          managerVersion: 1,
          sealed: 'a+b/c=',
        }),
        op,
        400,
        'ERR_INVALID_ARGUMENT',
      ],
      ['GET', '/v1/imports/pending', undefined, {}, 401, 'ERR_UNAUTHENTICATED'],
      ['POST', '/v1/imports/im-000000000000000000000000/result', '{}', asA(), 404, 'ERR_NOT_FOUND'],
      [
        'POST',
        '/v1/imports/im-000000000000000000000000/result',
        JSON.stringify({ code: 'ERR_MADE_UP' }),
        asA(),
        400,
        'ERR_INVALID_ARGUMENT',
      ],
      ['GET', '/v1/imports', undefined, {}, 401, 'ERR_UNAUTHENTICATED'],
    ];
    for (const [method, path, body, who, status, code] of cases) {
      const r = await raw(m, method, path, body, who);
      assert.equal(r.status, status, `${method} ${path}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error?.code, code, `${method} ${path}`);
    }
    // Now a correctly signed key: published; a stale prepare claims nothing.
    let r = await raw(m, 'PUT', '/v1/import-key', good, asA());
    assert.equal(r.status, 200, JSON.stringify(r.body));
    r = await raw(m, 'GET', `/v1/appliances/${a.id}/import-key`, undefined, op);
    assert.equal(r.body.publicKey, toB64u(ik));
    r = await raw(
      m,
      'POST',
      '/v1/keyrings/default/imports/prepare',
      JSON.stringify({ applianceId: a.id, expected: 0 }),
      op,
    );
    assert.equal(r.body.error?.code, 'ERR_CONFLICT');
    r = await raw(m, 'GET', '/v1/keyrings/default', undefined, op);
    assert.equal(r.body.masterVersion, 1);
    r = await raw(m, 'GET', '/v1/imports', undefined, op);
    assert.deepEqual(r.body.imports, []);
  });
});
