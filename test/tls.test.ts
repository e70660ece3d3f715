/**
 * The private PKI (src/tls/x509.ts, src/tls/ca-store.ts) checked against independent parsers and a
 * real loopback mutual-TLS handshake: node's X509Certificate (OpenSSL) parses and verifies every
 * certificate we write, and OpenSSL's TLS stack accepts or refuses our client certificates.
 */
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { createJsonClient } from '../src/appliance/client.ts';
import { ensureLocalPki, type LocalPki } from '../src/tls/ca-store.ts';
import {
  createCa,
  der,
  formatIp,
  generateIdentity,
  issueCertificate,
  parseIp,
  readExtension,
  readSubjectAltNames,
  readValidity,
  spkiFingerprint,
} from '../src/tls/x509.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const DAY = 86_400_000;
const code = (c: string) => (e: unknown) => (e as { code?: string }).code === c;

describe('DER writer (X.690)', () => {
  test('OIDs, including the multi-byte and huge arcs', () => {
    assert.equal(hex(der.oid('1.2.840.10045.4.3.2')), '06082a8648ce3d040302'); // ecdsa-with-SHA256
    assert.equal(hex(der.oid('2.5.29.17')), '0603551d11');
    assert.equal(hex(der.oid('2.999.3')), '0603883703'); // X.690 §8.19.5 example
    // 2.25.<uuid> (X.667): a 128-bit arc.
    const big = der.oid('2.25.329800735698586629295641978511506172918');
    assert.equal(big[0], 0x06);
    assert.throws(() => der.oid('1.40.1'), code('ERR_INVALID_ARGUMENT'));
    assert.throws(() => der.oid('3.1'), code('ERR_INVALID_ARGUMENT'));
    assert.throws(() => der.oid('1.02'), code('ERR_INVALID_ARGUMENT'));
  });

  test('INTEGER is minimal and positive', () => {
    assert.equal(hex(der.integer(0n)), '020100');
    assert.equal(hex(der.integer(127n)), '02017f');
    assert.equal(hex(der.integer(128n)), '02020080');
    assert.equal(hex(der.integer(256n)), '02020100');
    assert.equal(hex(der.integer(Uint8Array.of(0, 0, 0x7f))), '02017f');
    assert.equal(hex(der.integer(Uint8Array.of(0xff))), '020200ff');
  });

  test('lengths: short form, then minimal long form', () => {
    assert.equal(hex(der.octetString(new Uint8Array(127)).subarray(0, 2)), '047f');
    assert.equal(hex(der.octetString(new Uint8Array(128)).subarray(0, 3)), '048180');
    assert.equal(hex(der.octetString(new Uint8Array(256)).subarray(0, 4)), '04820100');
  });

  test('times: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5)', () => {
    const ascii = (b: Uint8Array) => Buffer.from(b.subarray(2)).toString('latin1');
    const t1 = der.time(new Date('2049-12-31T23:59:59.999Z'));
    assert.equal(t1[0], 0x17);
    assert.equal(ascii(t1), '491231235959Z');
    const t2 = der.time(new Date('2050-01-01T00:00:00Z'));
    assert.equal(t2[0], 0x18);
    assert.equal(ascii(t2), '20500101000000Z');
    const t3 = der.time(new Date('1950-01-01T00:00:00Z'));
    assert.equal(ascii(t3), '500101000000Z');
    assert.equal(der.time(new Date('1949-12-31T23:59:59Z'))[0], 0x18);
  });

  test('BOOLEAN, SET OF sorting, explicit tags', () => {
    assert.equal(hex(der.boolean(true)), '0101ff');
    assert.equal(hex(der.boolean(false)), '010100');
    assert.equal(hex(der.set(der.integer(2n), der.integer(1n))), '3106020101020102');
    assert.equal(hex(der.explicit(3, der.null())), 'a3020500');
  });
});

describe('IP addresses', () => {
  test('parse/format round trip; IPv6 text matches the WHATWG URL serializer', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (ip) => {
        const b = parseIp(ip);
        const text = formatIp(b);
        assert.deepEqual(parseIp(text), b);
        if (b.length === 16) {
          const whatwg = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
          const mapped = b.subarray(0, 12).every((x, i) => x === (i < 10 ? 0 : 0xff));
          if (!mapped) assert.equal(text, whatwg); // RFC 5952 §5 keeps the dotted quad for mapped
        } else {
          assert.equal(text, ip.split('.').map(Number).join('.'));
        }
      }),
      { numRuns: 300 },
    );
    assert.equal(formatIp(parseIp('::ffff:10.0.0.1')), '::ffff:10.0.0.1');
    assert.equal(formatIp(parseIp('2001:db8:0:0:1:0:0:1')), '2001:db8::1:0:0:1');
    assert.throws(() => parseIp('localhost'), code('ERR_INVALID_ARGUMENT'));
    assert.throws(() => parseIp('fe80::1%eth0'), code('ERR_INVALID_ARGUMENT'));
  });
});

describe('certificates (X509Certificate as the independent parser)', () => {
  const ca = createCa('Blindfold test CA', 30);
  const caX = new X509Certificate(ca.certPem);
  const id = generateIdentity();

  test('the CA is self-signed, a CA, with the profile extensions', () => {
    assert.equal(caX.ca, true);
    assert.equal(caX.subject, 'CN=Blindfold test CA');
    assert.equal(caX.issuer, caX.subject);
    assert.ok(caX.verify(caX.publicKey));
    assert.ok(caX.checkIssued(caX));
    assert.equal(hex(readExtension(ca.certPem, '2.5.29.19')!), '30060101ff020100'); // cA, pathLen 0
    assert.equal(hex(readExtension(ca.certPem, '2.5.29.15')!), '03020106'); // keyCertSign|cRLSign
    assert.equal(readExtension(ca.certPem, '2.5.29.14')!.length, 22); // OCTET STRING of 20 bytes
  });

  test('a leaf verifies under its CA and carries names, usages, validity and extras', () => {
    const claim = der.sequence(der.utf8String('cluster-7'), der.integer(42n));
    const before = Date.now();
    const pem = issueCertificate({
      ca,
      subjectPublicKey: id.publicKey,
      commonName: 'appliance-1',
      dnsNames: ['appliance-1.example', 'Localhost'],
      ipAddresses: ['127.0.0.1', '::1', '10.1.2.3'],
      usage: 'both',
      validDays: 7,
      extra: [{ oid: '1.3.6.1.4.1.99999.1.1', value: claim }],
    });
    const x = new X509Certificate(pem);
    assert.ok(x.verify(caX.publicKey));
    assert.ok(x.checkIssued(caX));
    assert.equal(x.ca, false);
    assert.equal(x.subject, 'CN=appliance-1');
    assert.equal(x.issuer, caX.subject);
    assert.equal(
      x.subjectAltName,
      'DNS:appliance-1.example, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:10.1.2.3',
    );
    assert.equal(x.checkHost('localhost'), 'localhost');
    assert.equal(x.checkIP('::1'), '::1');
    assert.equal(x.checkHost('evil.example'), undefined);
    assert.deepEqual(x.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']); // node: the EKU list
    assert.equal(hex(readExtension(pem, '2.5.29.15')!), '03020780'); // digitalSignature only
    assert.equal(hex(readExtension(pem, '2.5.29.19')!), '3000'); // cA FALSE
    assert.deepEqual(readExtension(pem, '1.3.6.1.4.1.99999.1.1'), claim);
    // The AKI is the CA's SKI.
    const aki = readExtension(pem, '2.5.29.35')!;
    assert.equal(hex(aki.subarray(4)), hex(readExtension(ca.certPem, '2.5.29.14')!.subarray(2)));
    // Validity: now − 5 min .. now + 7 days, as read by OpenSSL and by our reader.
    const { notBefore, notAfter } = readValidity(pem);
    assert.equal(new Date(x.validFrom).getTime(), notBefore.getTime());
    assert.equal(new Date(x.validTo).getTime(), notAfter.getTime());
    assert.ok(Math.abs(notBefore.getTime() - (before - 300_000)) < 5_000);
    assert.ok(Math.abs(notAfter.getTime() - (before + 7 * DAY)) < 5_000);
    assert.deepEqual(readSubjectAltNames(pem), {
      dnsNames: ['appliance-1.example', 'localhost'],
      ipAddresses: ['127.0.0.1', '::1', '10.1.2.3'],
    });
    // The fingerprint names the key: equal through every route, and equal to a direct hash.
    const direct = createHash('sha256').update(id.spkiDer).digest('hex');
    assert.equal(id.fingerprint, direct);
    for (const k of [pem, id.publicKey, id.privateKey, id.spkiDer])
      assert.equal(spkiFingerprint(k), direct);
  });

  test('usage maps to extendedKeyUsage; serials are random, positive, 16 bytes', () => {
    const mk = (usage: 'server' | 'client') =>
      new X509Certificate(
        issueCertificate({
          ca,
          subjectPublicKey: id.spkiDer,
          commonName: 'x',
          usage,
          validDays: 1,
        }),
      );
    const s = mk('server');
    const c = mk('client');
    assert.deepEqual(s.keyUsage, ['1.3.6.1.5.5.7.3.1']);
    assert.deepEqual(c.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.equal(s.subjectAltName, undefined);
    assert.equal(s.serialNumber.length, 32);
    assert.ok(Number.parseInt(s.serialNumber[0]!, 16) < 8);
    assert.notEqual(s.serialNumber, c.serialNumber);
    const fixed = issueCertificate({
      ca,
      subjectPublicKey: id.spkiDer,
      commonName: 'x',
      usage: 'client',
      validDays: 1,
      serial: 0xabcdefn,
    });
    assert.equal(new X509Certificate(fixed).serialNumber, 'ABCDEF');
  });

  test('notAfter after 2049 is a GeneralizedTime that OpenSSL reads back', () => {
    const pem = issueCertificate({
      ca,
      subjectPublicKey: id.publicKey,
      commonName: 'long',
      usage: 'client',
      validDays: 1,
      notAfter: new Date('2051-06-01T12:00:00Z'),
    });
    assert.equal(
      new Date(new X509Certificate(pem).validTo).toISOString(),
      '2051-06-01T12:00:00.000Z',
    );
    assert.equal(readValidity(pem).notAfter.toISOString(), '2051-06-01T12:00:00.000Z');
  });

  test('a certificate does not verify under another CA', () => {
    const other = new X509Certificate(createCa('Blindfold test CA', 30).certPem);
    const x = new X509Certificate(
      issueCertificate({
        ca,
        subjectPublicKey: id.publicKey,
        commonName: 'x',
        usage: 'client',
        validDays: 1,
      }),
    );
    assert.equal(x.verify(other.publicKey), false);
    // Same name, different key: OpenSSL's issuer check still tells them apart through the AKI.
    assert.equal(x.checkIssued(other), false);
  });

  test('refusals: wrong key types, mismatched CA, leaf as issuer, bad names, duplicate extensions', () => {
    const ed = generateKeyPairSync('ed25519').publicKey;
    const base = {
      ca,
      subjectPublicKey: id.publicKey,
      commonName: 'x',
      usage: 'client' as const,
      validDays: 1,
    };
    assert.throws(() => issueCertificate({ ...base, subjectPublicKey: ed }), code('ERR_PARAMS'));
    const other = createCa('other', 1);
    assert.throws(
      () => issueCertificate({ ...base, ca: { certPem: ca.certPem, keyPem: other.keyPem } }),
      code('ERR_PARAMS'),
    );
    const leaf = issueCertificate(base);
    assert.throws(
      () => issueCertificate({ ...base, ca: { certPem: leaf, keyPem: id.keyPem } }),
      code('ERR_PARAMS'),
    );
    assert.throws(
      () => issueCertificate({ ...base, dnsNames: ['bad name'] }),
      code('ERR_INVALID_ARGUMENT'),
    );
    assert.throws(
      () => issueCertificate({ ...base, ipAddresses: ['300.1.1.1'] }),
      code('ERR_INVALID_ARGUMENT'),
    );
    assert.throws(
      () => issueCertificate({ ...base, commonName: '' }),
      code('ERR_INVALID_ARGUMENT'),
    );
    assert.throws(() => issueCertificate({ ...base, validDays: 0 }), code('ERR_INVALID_ARGUMENT'));
    assert.throws(
      () => issueCertificate({ ...base, extra: [{ oid: '2.5.29.17', value: der.sequence() }] }),
      code('ERR_INVALID_ARGUMENT'),
    );
    const dup = { oid: '1.3.6.1.4.1.99999.1.2', value: der.null() };
    assert.throws(
      () => issueCertificate({ ...base, extra: [dup, dup] }),
      code('ERR_INVALID_ARGUMENT'),
    );
    assert.throws(
      () =>
        createCa('x', 1, { key: generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey }),
      code('ERR_PARAMS'),
    );
  });
});

// ---------------------------------------------------------------------------------------------

interface Reply {
  status: number;
  body: string;
}

function get(port: number, opts: https.RequestOptions): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path: '/', agent: false, ...opts },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function listen(server: https.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

describe('loopback mutual TLS', () => {
  let dir: string;
  let pki: LocalPki;
  let strict: https.Server;
  let lenient: https.Server;
  let strictPort: number;
  let lenientPort: number;
  const seen: string[] = [];
  const client = generateIdentity();
  let good: string;
  let otherCa: string;
  let expired: string;
  let serverOnly: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bf-tls-'));
    pki = await ensureLocalPki(dir, { hostnames: ['manager.test'] });
    const ca = { certPem: pki.caCertPem, keyPem: pki.caKeyPem };
    const leaf = (extra: Partial<Parameters<typeof issueCertificate>[0]> = {}) =>
      issueCertificate({
        ca,
        subjectPublicKey: client.publicKey,
        commonName: 'appliance',
        usage: 'client',
        validDays: 1,
        ...extra,
      });
    good = leaf();
    otherCa = leaf({ ca: createCa('Blindfold local CA', 1) }); // same CA name, different key
    expired = leaf({
      notBefore: new Date(Date.now() - 10 * DAY),
      notAfter: new Date(Date.now() - DAY),
    });
    serverOnly = leaf({ usage: 'server' });

    const tlsOpts = { key: pki.keyPem, cert: pki.certPem, ca: pki.caCertPem, requestCert: true };
    // The production setting: OpenSSL refuses bad client certificates before any handler runs.
    strict = https.createServer({ ...tlsOpts, rejectUnauthorized: true }, (req, res) => {
      const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
      const fp = spkiFingerprint(new X509Certificate(peer.raw).publicKey);
      seen.push(fp);
      res.end(fp);
    });
    // A diagnostic twin that lets everything through and reports OpenSSL's verdict, so the
    // refusals above can be shown to happen for the intended reason.
    lenient = https.createServer({ ...tlsOpts, rejectUnauthorized: false }, (req, res) => {
      const s = req.socket as import('node:tls').TLSSocket;
      res.end(s.authorized ? 'authorized' : String(s.authorizationError));
    });
    strictPort = await listen(strict);
    lenientPort = await listen(lenient);
  });

  after(async () => {
    strict.close();
    lenient.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a client certificate from the CA is accepted and the server sees its key fingerprint', async () => {
    const r = await get(strictPort, {
      ca: pki.caCertPem,
      key: client.keyPem,
      cert: good,
      servername: 'localhost',
    });
    assert.equal(r.status, 200);
    assert.equal(r.body, client.fingerprint);
    assert.deepEqual(seen, [client.fingerprint]);
  });

  test('the server certificate verifies for localhost, 127.0.0.1 and the configured hostname', async () => {
    const base = { ca: pki.caCertPem, key: client.keyPem, cert: good };
    // No servername: node checks the IP SAN against host 127.0.0.1.
    assert.equal((await get(strictPort, base)).status, 200);
    assert.equal((await get(strictPort, { ...base, servername: 'localhost' })).status, 200);
    assert.equal((await get(strictPort, { ...base, servername: 'manager.test' })).status, 200);
    await assert.rejects(
      get(strictPort, { ...base, servername: 'evil.example' }),
      code('ERR_TLS_CERT_ALTNAME_INVALID'),
    );
    // A client that does not trust our CA refuses the server.
    await assert.rejects(
      get(strictPort, { ...base, ca: createCa('x', 1).certPem }),
      code('SELF_SIGNED_CERT_IN_CHAIN'), // the server sends its CA along with its certificate
    );
    const x = new X509Certificate(pki.certPem);
    assert.equal(x.checkIP('::1'), '::1');
    assert.equal(x.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(x.checkHost('localhost'), 'localhost');
  });

  test('the JSON client presents its certificate and keeps one connection per endpoint', async () => {
    // client.ts gives each endpoint an agent whose pool key is the address (AddressKeyedAgent): the
    // certificate must still reach the server, sequential requests must share one connection,
    // and concurrent ones must not queue behind a single socket.
    let connections = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    const json = https.createServer(
      {
        key: pki.keyPem,
        cert: pki.certPem,
        ca: pki.caCertPem,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
        const fp = spkiFingerprint(new X509Certificate(peer.raw).publicKey);
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        setTimeout(
          () => {
            inFlight--;
            res.end(JSON.stringify({ fp }));
          },
          req.url === '/slow' ? 200 : 0,
        );
      },
    );
    json.on('secureConnection', () => connections++);
    const port = await listen(json);
    const c = createJsonClient({
      baseUrl: `https://localhost:${port}`,
      caPem: pki.caCertPem,
      certPem: good,
      keyPem: client.keyPem,
    });
    try {
      for (let i = 0; i < 10; i++) {
        assert.deepEqual(await c.request('GET', '/'), { fp: client.fingerprint });
      }
      assert.equal(connections, 1, 'sequential requests reuse the keep-alive connection');
      await Promise.all(Array.from({ length: 4 }, () => c.request('GET', '/slow')));
      assert.ok(
        connections >= 4,
        `4 concurrent requests opened ${connections - 1} more connections`,
      );
      assert.ok(maxInFlight >= 2, 'concurrent requests ran side by side');
    } finally {
      c.close();
      json.close();
    }
  });

  const refused: [string, () => https.RequestOptions, string][] = [
    ['no client certificate', () => ({}), 'UNABLE_TO_GET_ISSUER_CERT'],
    [
      'a certificate from another CA',
      () => ({ key: client.keyPem, cert: otherCa }),
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    ],
    ['an expired certificate', () => ({ key: client.keyPem, cert: expired }), 'CERT_HAS_EXPIRED'],
    [
      'a server-only certificate',
      () => ({ key: client.keyPem, cert: serverOnly }),
      'INVALID_PURPOSE',
    ],
  ];
  for (const [what, opts, reason] of refused) {
    test(`refused: ${what}`, async () => {
      const before = seen.length;
      await assert.rejects(
        get(strictPort, { ca: pki.caCertPem, servername: 'localhost', ...opts() }),
      );
      assert.equal(seen.length, before, 'the handler must not run');
      const diag = await get(lenientPort, {
        ca: pki.caCertPem,
        servername: 'localhost',
        ...opts(),
      });
      assert.equal(diag.body, reason);
    });
  }
});

describe('ensureLocalPki', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bf-pki-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const mode = async (p: string) =>
    (await import('node:fs/promises')).stat(p).then((s) => s.mode & 0o777);

  test('creates once, then loads; keys are 0600', async () => {
    const d = join(dir, 'a');
    const first = await ensureLocalPki(d);
    assert.deepEqual(first.wrote, { ca: 'created', server: 'issued' });
    if (process.platform !== 'win32') {
      assert.equal(await mode(first.paths.caKey), 0o600);
      assert.equal(await mode(first.paths.key), 0o600);
      assert.equal(await mode(d), 0o700);
    }
    const second = await ensureLocalPki(d);
    assert.deepEqual(second.wrote, { ca: null, server: null });
    assert.equal(second.caCertPem, first.caCertPem);
    assert.equal(second.certPem, first.certPem);
    assert.equal(second.keyPem, first.keyPem);
    assert.equal(second.caFingerprint, spkiFingerprint(first.caCertPem));
    assert.equal(await readFile(first.paths.cert, 'utf8'), first.certPem);
    const x = new X509Certificate(first.certPem);
    assert.ok(x.checkIssued(new X509Certificate(first.caCertPem)));
    assert.equal(
      x.subjectAltName,
      'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
    );
  });

  test('re-issues the server certificate when host names change, keeping the CA', async () => {
    const d = join(dir, 'b');
    const first = await ensureLocalPki(d, { hostnames: ['a.test'] });
    const same = await ensureLocalPki(d, { hostnames: [' A.test ', '127.0.0.1'] }); // same set, normalised
    assert.equal(same.wrote.server, null);
    const changed = await ensureLocalPki(d, { hostnames: ['a.test', '10.0.0.9', 'fe80::1'] });
    assert.deepEqual(changed.wrote, { ca: null, server: 'issued' });
    assert.equal(changed.caCertPem, first.caCertPem);
    assert.deepEqual(readSubjectAltNames(changed.certPem), {
      dnsNames: ['a.test', 'localhost'],
      ipAddresses: ['10.0.0.9', '127.0.0.1', '::1', 'fe80::1'],
    });
    const removed = await ensureLocalPki(d, { hostnames: [] });
    assert.equal(removed.wrote.server, 'issued');
  });

  test('re-issues an expired server certificate; renews an expiring CA over the same key', async () => {
    const d = join(dir, 'c');
    const past = new Date(Date.now() - 900 * DAY);
    const old = await ensureLocalPki(d, { now: past, caValidDays: 910, serverValidDays: 825 });
    const now = await ensureLocalPki(d);
    assert.deepEqual(now.wrote, { ca: 'renewed', server: 'issued' });
    assert.equal(now.caFingerprint, old.caFingerprint); // same key
    assert.equal(now.caKeyPem, old.caKeyPem);
    const newCa = new X509Certificate(now.caCertPem);
    assert.ok(new Date(newCa.validTo).getTime() > Date.now() + 3000 * DAY);
    // Certificates issued under the old CA certificate still chain to the renewed one.
    const oldLeaf = new X509Certificate(old.certPem);
    assert.ok(oldLeaf.checkIssued(newCa) && oldLeaf.verify(newCa.publicKey));
  });

  test('repairs a missing ca.pem from ca.key; refuses ca.pem without ca.key', async () => {
    const d = join(dir, 'd');
    const first = await ensureLocalPki(d);
    await unlink(first.paths.caCert);
    const repaired = await ensureLocalPki(d);
    assert.equal(repaired.wrote.ca, 'renewed');
    assert.equal(repaired.caFingerprint, first.caFingerprint);
    assert.equal(repaired.wrote.server, null); // the old server certificate still chains
    await unlink(first.paths.caKey);
    await assert.rejects(
      ensureLocalPki(d),
      (e: Error & { code?: string }) => e.code === 'ERR_IO' && /restore the CA key/.test(e.message),
    );
  });

  test('re-issues when server.key does not match server.pem', async () => {
    const d = join(dir, 'e');
    const first = await ensureLocalPki(d);
    await writeFile(first.paths.key, generateIdentity().keyPem, { mode: 0o600 });
    const next = await ensureLocalPki(d);
    assert.equal(next.wrote.server, 'issued');
    assert.notEqual(next.certPem, first.certPem);
  });

  test('refuses a CA key readable by others', { skip: process.platform === 'win32' }, async () => {
    const d = join(dir, 'f');
    const first = await ensureLocalPki(d);
    await chmod(first.paths.caKey, 0o644);
    await assert.rejects(
      ensureLocalPki(d),
      (e: Error & { code?: string }) => e.code === 'ERR_FORBIDDEN' && /chmod 600/.test(e.message),
    );
  });
});
