/**
 * The manager's local PKI on disk: a private CA and an HTTPS server certificate, created at first
 * start and reused afterwards.
 *
 *   dir/ca.pem      self-signed CA certificate (share it: clients pin it)
 *   dir/ca.key      CA private key, PKCS#8 PEM, mode 0600
 *   dir/server.pem  server certificate for localhost, 127.0.0.1, ::1 and the configured hostnames
 *   dir/server.key  server private key, PKCS#8 PEM, mode 0600
 *
 * Every write is atomic (src/util/atomic.ts), keys before certificates, so a crash leaves at worst a
 * key without its certificate, which the next start repairs:
 *  - ca.key without ca.pem: the CA certificate is re-signed over the same key. Same key and name
 *    give the same subjectKeyIdentifier, so every certificate issued earlier still verifies.
 *  - a CA that expires within RENEW_BEFORE_DAYS is renewed the same way (same key, new validity).
 *  - a server certificate that is missing, unreadable, not matching server.key, not issued by the
 *    CA, expiring within RENEW_BEFORE_DAYS, or naming a different host set is re-issued over a
 *    fresh key.
 * ca.pem without ca.key is NOT repaired: a new CA would silently invalidate every appliance's client
 * certificate, so the operator must decide (restore the key, or delete ca.pem on purpose).
 *
 * Not handled: two processes creating the same directory at the same instant (each would write
 * its own CA; the last rename wins). The manager starts one process per PKI directory.
 */
import { createPrivateKey, createPublicKey, type KeyObject, X509Certificate } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { BlindfoldError } from '../core/errors.ts';
import { toIoError, writeFileAtomic } from '../util/atomic.ts';
import {
  createCa,
  formatIp,
  generateIdentity,
  issueCertificate,
  parseIp,
  readSpki,
  readSubjectAltNames,
  readValidity,
  spkiFingerprint,
} from './x509.ts';

/** Renew a certificate this many days before it expires. */
export const RENEW_BEFORE_DAYS = 30;
const DAY_MS = 24 * 60 * 60 * 1000;

export interface LocalPkiOptions {
  /** Extra DNS names or IP addresses for the server certificate (localhost, 127.0.0.1, ::1 are always in). */
  hostnames?: string[];
  /** Common name of a newly created CA. Default "Blindfold local CA". */
  caCommonName?: string;
  /** Default 3650. */
  caValidDays?: number;
  /** Default 825. */
  serverValidDays?: number;
  /** Reference time (tests). Default now. */
  now?: Date;
}

export interface LocalPki {
  caCertPem: string;
  caKeyPem: string;
  /** Server certificate and key, ready for https.createServer({ cert, key, ca }). */
  certPem: string;
  keyPem: string;
  /** spkiFingerprint of the CA key. */
  caFingerprint: string;
  paths: { caCert: string; caKey: string; cert: string; key: string };
  /** What this call wrote. */
  wrote: { ca: 'created' | 'renewed' | null; server: 'issued' | null };
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw toIoError(e, 'read', path);
  }
}

/** A private key readable by group or others is refused, as for the root key (manager/seal.ts). */
async function checkKeyFileMode(path: string): Promise<void> {
  if (process.platform === 'win32') return; // POSIX modes mean nothing there
  const st = await stat(path).catch((e) => {
    throw toIoError(e, 'stat', path);
  });
  if (st.mode & 0o077) {
    throw new BlindfoldError(
      'ERR_FORBIDDEN',
      `private key ${path} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${path}`,
    );
  }
}

function loadKey(pem: string, path: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (cause) {
    throw new BlindfoldError('ERR_DECODE', `${path} is not a PEM private key`, { cause });
  }
}

function publicMatches(cert: string, key: KeyObject): boolean {
  const spki = new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' }));
  return Buffer.compare(readSpki(cert), spki) === 0;
}

/** The names the server certificate must carry: DNS names lower-cased, IPs canonical, sorted. */
function wantedNames(hostnames: string[]): {
  commonName: string;
  dnsNames: string[];
  ipAddresses: string[];
} {
  const dns = new Set(['localhost']);
  let commonName = 'localhost';
  const ips = new Set(['127.0.0.1', '::1']);
  for (const h of hostnames) {
    const name = h.trim();
    if (name === '') continue;
    if (isIP(name)) ips.add(formatIp(parseIp(name)));
    else {
      if (commonName === 'localhost' && name.length <= 64) commonName = name.toLowerCase();
      dns.add(name.toLowerCase());
    }
  }
  return { commonName, dnsNames: [...dns].sort(), ipAddresses: [...ips].sort() };
}

function sameSet(a: string[], b: string[]): boolean {
  const sb = new Set(b);
  return new Set(a).size === sb.size && a.every((x) => sb.has(x));
}

/** Why the existing server certificate must be replaced, or null if it is fine. */
function serverProblem(
  certPem: string | undefined,
  keyPem: string | undefined,
  caCertPem: string,
  want: { dnsNames: string[]; ipAddresses: string[] },
  now: Date,
): string | null {
  if (certPem === undefined || keyPem === undefined) return 'missing';
  try {
    const key = createPrivateKey(keyPem);
    if (!publicMatches(certPem, key)) return 'key mismatch';
    const x = new X509Certificate(certPem);
    const ca = new X509Certificate(caCertPem);
    if (!x.checkIssued(ca) || !x.verify(ca.publicKey)) return 'not issued by this CA';
    const { notBefore, notAfter } = readValidity(certPem);
    if (notBefore.getTime() > now.getTime() + DAY_MS) return 'not yet valid';
    if (notAfter.getTime() - now.getTime() < RENEW_BEFORE_DAYS * DAY_MS) return 'expiring';
    const have = readSubjectAltNames(certPem);
    if (!sameSet(have.dnsNames, want.dnsNames) || !sameSet(have.ipAddresses, want.ipAddresses)) {
      return 'host names changed';
    }
    return null;
  } catch {
    return 'unreadable';
  }
}

/** Loads the local PKI from `dir`, creating or repairing what is missing (see the module comment). */
export async function ensureLocalPki(dir: string, opts: LocalPkiOptions = {}): Promise<LocalPki> {
  const now = opts.now ?? new Date();
  const paths = {
    caCert: join(dir, 'ca.pem'),
    caKey: join(dir, 'ca.key'),
    cert: join(dir, 'server.pem'),
    key: join(dir, 'server.key'),
  };
  await mkdir(dir, { recursive: true, mode: 0o700 }).catch((e) => {
    throw toIoError(e, 'create directory', dir);
  });
  const wrote: LocalPki['wrote'] = { ca: null, server: null };

  // --- the CA
  let caCertPem = await readIfExists(paths.caCert);
  let caKeyPem = await readIfExists(paths.caKey);
  if (caCertPem !== undefined && caKeyPem === undefined) {
    throw new BlindfoldError(
      'ERR_IO',
      `${paths.caCert} exists but ${paths.caKey} is missing: restore the CA key, or delete ${paths.caCert} to create a new CA (every certificate it issued will stop working)`,
    );
  }
  const caValidDays = opts.caValidDays ?? 3650;
  const caName = opts.caCommonName ?? 'Blindfold local CA';
  if (caKeyPem === undefined) {
    const ca = createCa(caName, caValidDays, { now });
    await writeFileAtomic(paths.caKey, ca.keyPem, { mode: 0o600 });
    await writeFileAtomic(paths.caCert, ca.certPem, { mode: 0o644 });
    [caCertPem, caKeyPem] = [ca.certPem, ca.keyPem];
    wrote.ca = 'created';
  } else {
    await checkKeyFileMode(paths.caKey);
    const caKey = loadKey(caKeyPem, paths.caKey);
    let renew = caCertPem === undefined;
    if (caCertPem !== undefined) {
      let matches: boolean;
      try {
        matches = publicMatches(caCertPem, caKey);
      } catch (cause) {
        throw new BlindfoldError('ERR_DECODE', `${paths.caCert} is not a readable certificate`, {
          cause,
        });
      }
      if (!matches) {
        throw new BlindfoldError('ERR_PARAMS', `${paths.caKey} does not match ${paths.caCert}`);
      }
      const { notAfter } = readValidity(caCertPem);
      renew = notAfter.getTime() - now.getTime() < RENEW_BEFORE_DAYS * DAY_MS;
    }
    if (renew) {
      // Keep the existing name when there is a certificate to read it from.
      const cn = caCertPem
        ? (/(?:^|\n)CN=(.*)/.exec(new X509Certificate(caCertPem).subject)?.[1] ?? caName)
        : caName;
      caCertPem = createCa(cn, caValidDays, { now, key: caKey }).certPem;
      await writeFileAtomic(paths.caCert, caCertPem, { mode: 0o644 });
      wrote.ca = 'renewed';
    }
  }
  if (caCertPem === undefined)
    throw new BlindfoldError('ERR_INTERNAL', 'unreachable: no CA certificate');

  // --- the server certificate
  const want = wantedNames(opts.hostnames ?? []);
  let certPem = await readIfExists(paths.cert);
  let keyPem = await readIfExists(paths.key);
  if (keyPem !== undefined) await checkKeyFileMode(paths.key);
  if (serverProblem(certPem, keyPem, caCertPem, want, now) !== null) {
    const id = generateIdentity();
    certPem = issueCertificate({
      ca: { certPem: caCertPem, keyPem: caKeyPem },
      subjectPublicKey: id.publicKey,
      commonName: want.commonName,
      dnsNames: want.dnsNames,
      ipAddresses: want.ipAddresses,
      usage: 'server',
      validDays: opts.serverValidDays ?? 825,
      now,
    });
    keyPem = id.keyPem;
    await writeFileAtomic(paths.key, keyPem, { mode: 0o600 });
    await writeFileAtomic(paths.cert, certPem, { mode: 0o644 });
    wrote.server = 'issued';
  }

  return {
    caCertPem,
    caKeyPem,
    certPem: certPem!,
    keyPem: keyPem!,
    caFingerprint: spkiFingerprint(caCertPem),
    paths,
    wrote,
  };
}
