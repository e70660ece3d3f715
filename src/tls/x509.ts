/**
 * A minimal X.509 v3 certificate builder (RFC 5280) for Blindfold's private PKI: the manager's
 * local CA, its HTTPS server certificate, and the client certificates that identify appliances.
 *
 * Why hand-written DER: the project has no ASN.1 dependency, and the profile we need is tiny and
 * fixed (one signature algorithm, a CN-only name, six extensions). Node parses and verifies what we
 * write (`crypto.X509Certificate`, OpenSSL during TLS handshakes), and test/tls.test.ts checks both.
 *
 * Profile (every certificate):
 *  - version v3, serialNumber 16 random bytes with the top bit cleared (positive, RFC 5280 §4.1.2.2),
 *  - signature ecdsa-with-SHA256 (1.2.840.10045.4.3.2, parameters absent, RFC 5758 §3.2), keys
 *    ECDSA P-256 only,
 *  - issuer/subject: a single RDN with commonName (2.5.4.3) as UTF8String (RFC 5280 §4.1.2.6),
 *  - validity: notBefore = now − 5 minutes (clock skew), notAfter = now + validDays; UTCTime for
 *    years 1950..2049, GeneralizedTime otherwise (RFC 5280 §4.1.2.5),
 *  - subjectKeyIdentifier = leftmost 160 bits of SHA-256(subjectPublicKey BIT STRING contents)
 *    (RFC 7093 §2 method 1).
 * CA: basicConstraints {cA TRUE, pathLen 0} critical; keyUsage keyCertSign|cRLSign critical.
 * Leaf: basicConstraints {} (cA FALSE) critical; keyUsage digitalSignature critical (ECDHE+ECDSA
 * needs no keyEncipherment); extKeyUsage serverAuth and/or clientAuth; subjectAltName (DNS, IP);
 * authorityKeyIdentifier = the CA's subjectKeyIdentifier; then caller-supplied non-critical extras.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
  X509Certificate,
} from 'node:crypto';
import { isIP } from 'node:net';
import { BlindfoldError } from '../core/errors.ts';

// ---------------------------------------------------------------------------------------------
// A tiny DER writer (X.690 §8, §10). Every function returns a complete TLV.

function concatBytes(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function encodeLength(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n); // X.690 §8.1.3.4 short form
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes); // §8.1.3.5 long form, minimal (§10.1)
}

function tlv(tag: number, ...content: Uint8Array[]): Uint8Array {
  const body = concatBytes(content);
  return concatBytes([Uint8Array.of(tag), encodeLength(body.length), body]);
}

const latin = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

export const der = {
  sequence: (...items: Uint8Array[]): Uint8Array => tlv(0x30, ...items),
  /** SET OF: DER sorts the encodings (X.690 §11.6). */
  set: (...items: Uint8Array[]): Uint8Array =>
    tlv(0x31, ...[...items].sort((a, b) => Buffer.compare(a, b))),
  /** A non-negative INTEGER from a bigint or big-endian bytes, minimally encoded (§8.3.2). */
  integer(v: bigint | Uint8Array): Uint8Array {
    let b: Uint8Array;
    if (typeof v === 'bigint') {
      if (v < 0n) throw new RangeError('negative INTEGER not supported');
      const hex = v.toString(16);
      b = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
    } else {
      b = v;
    }
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    b = b.subarray(i);
    if (b.length === 0) b = Uint8Array.of(0);
    if (b[0]! & 0x80) b = concatBytes([Uint8Array.of(0), b]); // keep it positive
    return tlv(0x02, b);
  },
  boolean: (v: boolean): Uint8Array => tlv(0x01, Uint8Array.of(v ? 0xff : 0x00)), // §11.1
  null: (): Uint8Array => Uint8Array.of(0x05, 0x00),
  /** OBJECT IDENTIFIER from dotted decimal (§8.19); arcs may exceed 2^53. */
  oid(dotted: string): Uint8Array {
    if (!/^[0-2](\.(0|[1-9][0-9]*))+$/.test(dotted)) {
      throw new BlindfoldError('ERR_INVALID_ARGUMENT', `invalid OID ${JSON.stringify(dotted)}`);
    }
    const arcs = dotted.split('.').map((a) => BigInt(a));
    if (arcs[0]! < 2n && arcs[1]! >= 40n) {
      throw new BlindfoldError('ERR_INVALID_ARGUMENT', `invalid OID ${dotted}: second arc ≥ 40`);
    }
    const out: number[] = [];
    const subids = [arcs[0]! * 40n + arcs[1]!, ...arcs.slice(2)];
    for (const s of subids) {
      const groups: number[] = [Number(s & 0x7fn)];
      for (let v = s >> 7n; v > 0n; v >>= 7n) groups.unshift(Number(v & 0x7fn) | 0x80);
      out.push(...groups);
    }
    return tlv(0x06, Uint8Array.from(out));
  },
  utf8String: (s: string): Uint8Array => tlv(0x0c, new TextEncoder().encode(s)),
  printableString(s: string): Uint8Array {
    if (!/^[A-Za-z0-9 '()+,\-./:=?]*$/.test(s)) {
      throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'not a PrintableString');
    }
    return tlv(0x13, latin(s));
  },
  ia5String(s: string): Uint8Array {
    for (let i = 0; i < s.length; i++) {
      if (s.charCodeAt(i) > 0x7f) throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'not IA5');
    }
    return tlv(0x16, latin(s));
  },
  /** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; seconds, always Z. */
  time(d: Date): Uint8Array {
    const p = (n: number, w = 2) => String(n).padStart(w, '0');
    const y = d.getUTCFullYear();
    if (y < 0 || y > 9999) throw new RangeError('year out of range');
    const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
    if (y >= 1950 && y < 2050) return tlv(0x17, latin(`${p(y % 100)}${rest}`));
    return tlv(0x18, latin(`${p(y, 4)}${rest}`));
  },
  bitString: (bytes: Uint8Array, unusedBits = 0): Uint8Array =>
    tlv(0x03, Uint8Array.of(unusedBits), bytes),
  octetString: (bytes: Uint8Array): Uint8Array => tlv(0x04, bytes),
  /** [n] EXPLICIT: a constructed context-specific tag around one complete TLV. */
  explicit: (n: number, inner: Uint8Array): Uint8Array => tlv(0xa0 | n, inner),
  /** [n] IMPLICIT primitive: context-specific tag replacing the primitive type's tag. */
  implicit: (n: number, content: Uint8Array): Uint8Array => tlv(0x80 | n, content),
};

/**
 * A named BIT STRING (e.g. KeyUsage) from the set bit numbers: DER drops trailing zero bits
 * (X.690 §11.2.2), so the unused-bits count depends on the highest bit set.
 */
function namedBits(bits: number[]): Uint8Array {
  const max = Math.max(...bits);
  const bytes = new Uint8Array((max >> 3) + 1);
  for (const b of bits) bytes[b >> 3]! |= 0x80 >> (b & 7);
  return der.bitString(bytes, 7 - (max & 7));
}

// ---------------------------------------------------------------------------------------------
// A tiny DER reader, enough to pull the subject, key and extensions back out of a certificate.

interface Tlv {
  tag: number;
  /** The whole TLV. */
  raw: Uint8Array;
  /** The contents octets. */
  value: Uint8Array;
}

function readTlv(b: Uint8Array, off: number): Tlv & { end: number } {
  const bad = (d: string) => new BlindfoldError('ERR_DECODE', `invalid DER: ${d}`);
  if (off + 2 > b.length) throw bad('truncated header');
  const tag = b[off]!;
  if ((tag & 0x1f) === 0x1f) throw bad('high tag numbers are not supported');
  let len = b[off + 1]!;
  let hdr = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || off + 2 + n > b.length) throw bad('bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[off + 2 + i]!;
    hdr += n;
  }
  const end = off + hdr + len;
  if (end > b.length) throw bad('truncated value');
  return { tag, raw: b.subarray(off, end), value: b.subarray(off + hdr, end), end };
}

function children(b: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  for (let off = 0; off < b.length; ) {
    const t = readTlv(b, off);
    out.push(t);
    off = t.end;
  }
  return out;
}

function decodeOid(v: Uint8Array): string {
  const subids: bigint[] = [];
  let acc = 0n;
  for (const x of v) {
    acc = (acc << 7n) | BigInt(x & 0x7f);
    if (!(x & 0x80)) {
      subids.push(acc);
      acc = 0n;
    }
  }
  const first = subids.shift() ?? 0n;
  const a = first < 80n ? first / 40n : 2n;
  return [a, first - a * 40n, ...subids].join('.');
}

interface ParsedCert {
  tbs: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  subject: Uint8Array; // raw Name TLV
  spki: Uint8Array; // raw SubjectPublicKeyInfo TLV
  extensions: Map<string, { critical: boolean; value: Uint8Array }>;
}

function parseCert(certDer: Uint8Array): ParsedCert {
  const cert = readTlv(certDer, 0);
  if (cert.tag !== 0x30 || cert.end !== certDer.length) {
    throw new BlindfoldError('ERR_DECODE', 'invalid DER: not a certificate');
  }
  const [tbsTlv] = children(cert.value);
  if (tbsTlv?.tag !== 0x30)
    throw new BlindfoldError('ERR_DECODE', 'invalid DER: no TBSCertificate');
  const f = children(tbsTlv.value);
  const i = f[0]?.tag === 0xa0 ? 1 : 0; // optional [0] version
  const times = children(f[i + 3]?.value ?? new Uint8Array(0));
  if (times.length !== 2) throw new BlindfoldError('ERR_DECODE', 'invalid DER: malformed Validity');
  const subject = f[i + 4];
  const spki = f[i + 5];
  if (subject?.tag !== 0x30 || spki?.tag !== 0x30) {
    throw new BlindfoldError('ERR_DECODE', 'invalid DER: malformed TBSCertificate');
  }
  const extensions = new Map<string, { critical: boolean; value: Uint8Array }>();
  const extsField = f.slice(i + 6).find((t) => t.tag === 0xa3);
  if (extsField) {
    const [seq] = children(extsField.value);
    for (const ext of children(seq?.value ?? new Uint8Array(0))) {
      const parts = children(ext.value);
      const oid = decodeOid(parts[0]!.value);
      const critical = parts[1]?.tag === 0x01 && parts[1].value[0] !== 0;
      const octets = parts[parts.length - 1]!;
      extensions.set(oid, { critical, value: octets.value });
    }
  }
  return {
    tbs: tbsTlv.raw,
    notBefore: decodeTime(times[0]!),
    notAfter: decodeTime(times[1]!),
    subject: subject.raw,
    spki: spki.raw,
    extensions,
  };
}

/** UTCTime (YYMMDDHHMMSSZ, 50..99 → 19xx) or GeneralizedTime (YYYYMMDDHHMMSSZ), RFC 5280 §4.1.2.5. */
function decodeTime(t: Tlv): Date {
  const s = Buffer.from(t.value).toString('latin1');
  const m =
    t.tag === 0x17
      ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s)
      : t.tag === 0x18
        ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s)
        : null;
  if (!m) throw new BlindfoldError('ERR_DECODE', 'invalid DER: bad time');
  let y = Number(m[1]);
  if (t.tag === 0x17) y += y >= 50 ? 1900 : 2000;
  return new Date(
    Date.UTC(y, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])),
  );
}

// ---------------------------------------------------------------------------------------------
// Names, keys, addresses.

const OID = {
  commonName: '2.5.4.3',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

function nameCn(cn: string): Uint8Array {
  if (typeof cn !== 'string' || cn.length === 0 || cn.length > 64) {
    // ub-common-name is 64 characters (RFC 5280 Appendix A.1).
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'commonName must be 1..64 characters');
  }
  return der.sequence(der.set(der.sequence(der.oid(OID.commonName), der.utf8String(cn))));
}

function pemToDer(pem: string, label: string): Uint8Array {
  const m = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`).exec(
    pem,
  );
  if (!m) throw new BlindfoldError('ERR_DECODE', `invalid PEM: no ${label} block`);
  return new Uint8Array(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
}

function derToPem(b: Uint8Array, label: string): string {
  const lines =
    Buffer.from(b)
      .toString('base64')
      .match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

function assertP256(key: KeyObject, what: string): void {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new BlindfoldError('ERR_PARAMS', `${what} must be an ECDSA P-256 key`);
  }
}

/** Any public-key form we accept → a public KeyObject. */
function toPublicKey(k: KeyObject | Uint8Array | string): KeyObject {
  try {
    if (typeof k === 'string') {
      if (k.includes('-----BEGIN CERTIFICATE-----')) return new X509Certificate(k).publicKey;
      return createPublicKey(k);
    }
    if (k instanceof Uint8Array)
      return createPublicKey({ key: Buffer.from(k), format: 'der', type: 'spki' });
    return k.type === 'private' ? createPublicKey(k) : k;
  } catch (cause) {
    if (cause instanceof BlindfoldError) throw cause;
    throw new BlindfoldError('ERR_DECODE', 'invalid public key or certificate', { cause });
  }
}

function spkiDerOf(k: KeyObject): Uint8Array {
  return new Uint8Array(k.export({ type: 'spki', format: 'der' }));
}

/** RFC 7093 §2 method 1: leftmost 160 bits of SHA-256 over the subjectPublicKey BIT STRING value. */
function keyIdentifier(spkiDer: Uint8Array): Uint8Array {
  const [, bits] = children(readTlv(spkiDer, 0).value);
  if (bits?.tag !== 0x03) throw new BlindfoldError('ERR_DECODE', 'invalid SubjectPublicKeyInfo');
  return new Uint8Array(
    createHash('sha256').update(bits.value.subarray(1)).digest().subarray(0, 20),
  );
}

/** Text form of an IP address → its 4- or 16-byte network form (for iPAddress GeneralNames). */
export function parseIp(s: string): Uint8Array {
  const v = isIP(s);
  if (v === 4) return Uint8Array.from(s.split('.').map(Number));
  // Zone ids ("fe80::1%eth0") are local to one host and have no place in a certificate.
  if (v !== 6 || s.includes('%'))
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', `not an IP address: ${s}`);
  let text = s;
  const tail: number[] = [];
  if (s.includes('.')) {
    // IPv4-embedded tail (RFC 4291 §2.2 form 3): "::ffff:1.2.3.4".
    const cut = s.lastIndexOf(':');
    const q = s
      .slice(cut + 1)
      .split('.')
      .map(Number);
    tail.push((q[0]! << 8) | q[1]!, (q[2]! << 8) | q[3]!);
    text = s.slice(0, cut + 1);
    if (!text.endsWith('::')) text = text.slice(0, -1);
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const parse = (p: string) => (p === '' ? [] : p.split(':').map((h) => Number.parseInt(h, 16)));
  const hi = parse(head);
  const lo = [...(rest === undefined ? [] : parse(rest)), ...tail];
  const groups =
    rest === undefined
      ? [...hi, ...tail]
      : [...hi, ...new Array(8 - hi.length - lo.length).fill(0), ...lo];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** Network form → text: dotted quad, or RFC 5952 §4 canonical IPv6. */
export function formatIp(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join('.');
  if (b.length !== 16) throw new BlindfoldError('ERR_DECODE', 'iPAddress must be 4 or 16 bytes');
  const g = Array.from({ length: 8 }, (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!);
  let best = -1;
  let bestLen = 1; // §4.2.2: a single 0 group is not shortened
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  // §5: IPv4-mapped addresses keep their dotted-quad tail.
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff)
    return `::ffff:${Array.from(b.subarray(12)).join('.')}`;
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

function isDnsName(s: string): boolean {
  // RFC 5280 §4.2.1.6 preferred name syntax; a leading "*." wildcard label is allowed.
  return (
    s.length <= 253 &&
    /^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(
      s,
    )
  );
}

// ---------------------------------------------------------------------------------------------
// Building and signing.

export interface Extension {
  oid: string;
  critical?: boolean;
  /** extnValue contents: the DER encoding of the extension's value (wrapped in an OCTET STRING here). */
  value: Uint8Array;
}

function encodeExtension(e: Extension): Uint8Array {
  return der.sequence(
    der.oid(e.oid),
    ...(e.critical ? [der.boolean(true)] : []), // DEFAULT FALSE is omitted in DER (X.690 §11.5)
    der.octetString(e.value),
  );
}

interface TbsInput {
  serial: bigint | Uint8Array;
  issuer: Uint8Array;
  subject: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  spki: Uint8Array;
  extensions: Extension[];
}

function signCertificate(t: TbsInput, signer: KeyObject): Uint8Array {
  const seen = new Set<string>();
  for (const e of t.extensions) {
    // RFC 5280 §4.2: a certificate MUST NOT include more than one instance of an extension.
    if (seen.has(e.oid))
      throw new BlindfoldError('ERR_INVALID_ARGUMENT', `duplicate extension ${e.oid}`);
    seen.add(e.oid);
  }
  if (!(t.notAfter.getTime() > t.notBefore.getTime())) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'notAfter must be after notBefore');
  }
  const sigAlg = der.sequence(der.oid(OID.ecdsaWithSha256)); // parameters absent (RFC 5758 §3.2)
  const tbs = der.sequence(
    der.explicit(0, der.integer(2n)), // v3
    der.integer(t.serial),
    sigAlg,
    t.issuer,
    der.sequence(der.time(t.notBefore), der.time(t.notAfter)),
    t.subject,
    t.spki,
    der.explicit(3, der.sequence(...t.extensions.map(encodeExtension))),
  );
  const sig = sign('sha256', tbs, { key: signer, dsaEncoding: 'der' });
  return der.sequence(tbs, sigAlg, der.bitString(new Uint8Array(sig)));
}

function randomSerial(): Uint8Array {
  const s = new Uint8Array(randomBytes(16));
  s[0]! &= 0x7f; // positive (RFC 5280 §4.1.2.2); ≥ 64 bits of entropy remain
  if (s[0] === 0) s[0] = 0x01; // keep all 16 bytes so serials have a fixed size
  return s;
}

const CLOCK_SKEW_MS = 5 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

export interface ValidityOptions {
  /** Reference time (default: now). */
  now?: Date;
  /** Overrides now − 5 minutes. */
  notBefore?: Date;
  /** Overrides now + validDays. */
  notAfter?: Date;
}

function validity(validDays: number, o: ValidityOptions): { notBefore: Date; notAfter: Date } {
  if (!(Number.isFinite(validDays) && validDays > 0)) {
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'validDays must be a positive number');
  }
  const now = (o.now ?? new Date()).getTime();
  return {
    notBefore: o.notBefore ?? new Date(now - CLOCK_SKEW_MS),
    notAfter: o.notAfter ?? new Date(now + validDays * DAY_MS),
  };
}

export interface CertAndKey {
  certPem: string;
  /** PKCS#8 PEM of the private key. */
  keyPem: string;
}

/**
 * A self-signed CA certificate. With `opts.key` the CA is re-signed over an existing key: the same
 * key and name give the same subjectKeyIdentifier, so certificates issued before still verify
 * (how ca-store renews an expiring CA).
 */
export function createCa(
  commonName: string,
  validDays: number,
  opts: ValidityOptions & { key?: KeyObject | string } = {},
): CertAndKey {
  const privateKey =
    opts.key === undefined
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
      : typeof opts.key === 'string'
        ? createPrivateKey(opts.key)
        : opts.key;
  assertP256(privateKey, 'the CA key');
  const spki = spkiDerOf(createPublicKey(privateKey));
  const name = nameCn(commonName);
  const ski = keyIdentifier(spki);
  const certDer = signCertificate(
    {
      serial: randomSerial(),
      issuer: name,
      subject: name,
      ...validity(validDays, opts),
      spki,
      extensions: [
        // pathLen 0: this CA signs leaf certificates only.
        {
          oid: OID.basicConstraints,
          critical: true,
          value: der.sequence(der.boolean(true), der.integer(0n)),
        },
        { oid: OID.keyUsage, critical: true, value: namedBits([5, 6]) }, // keyCertSign, cRLSign
        { oid: OID.subjectKeyIdentifier, value: der.octetString(ski) },
      ],
    },
    privateKey,
  );
  return {
    certPem: derToPem(certDer, 'CERTIFICATE'),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

export type CertUsage = 'server' | 'client' | 'both';

export interface IssueOptions extends ValidityOptions {
  ca: CertAndKey;
  /** The subject's public key: a KeyObject (a private one is reduced to its public half) or SPKI DER. */
  subjectPublicKey: KeyObject | Uint8Array;
  commonName: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: CertUsage;
  validDays: number;
  /** Default: 16 random bytes, top bit cleared. */
  serial?: bigint | Uint8Array;
  /** Extra non-critical extensions, e.g. the manager's membership claim; `value` is the extnValue DER. */
  extra?: { oid: string; value: Uint8Array }[];
}

/** Issues a leaf certificate signed by `ca` (profile in the module comment). Returns PEM. */
export function issueCertificate(o: IssueOptions): string {
  const caKey = createPrivateKey(o.ca.keyPem);
  assertP256(caKey, 'the CA key');
  const caDer = pemToDer(o.ca.certPem, 'CERTIFICATE');
  const ca = parseCert(caDer);
  const caSpki = spkiDerOf(createPublicKey(caKey));
  if (Buffer.compare(ca.spki, caSpki) !== 0) {
    throw new BlindfoldError('ERR_PARAMS', 'the CA key does not match the CA certificate');
  }
  const bc = ca.extensions.get(OID.basicConstraints);
  const cA = bc ? children(readTlv(bc.value, 0).value)[0] : undefined;
  if (cA?.tag !== 0x01 || cA.value[0] === 0) {
    throw new BlindfoldError('ERR_PARAMS', 'the issuing certificate is not a CA');
  }
  // authorityKeyIdentifier must equal the CA's subjectKeyIdentifier, or OpenSSL refuses the chain.
  const caSki = ca.extensions.get(OID.subjectKeyIdentifier);
  const akid = caSki ? readTlv(caSki.value, 0).value : keyIdentifier(caSpki);

  const subjectKey = toPublicKey(o.subjectPublicKey);
  assertP256(subjectKey, 'the subject key');
  const spki = spkiDerOf(subjectKey);

  const sans: Uint8Array[] = [];
  for (const d of o.dnsNames ?? []) {
    if (!isDnsName(d))
      throw new BlindfoldError('ERR_INVALID_ARGUMENT', `invalid DNS name ${JSON.stringify(d)}`);
    sans.push(der.implicit(2, latin(d.toLowerCase()))); // dNSName [2] IA5String
  }
  for (const ip of o.ipAddresses ?? []) sans.push(der.implicit(7, parseIp(ip))); // iPAddress [7]
  const eku =
    o.usage === 'server'
      ? [OID.serverAuth]
      : o.usage === 'client'
        ? [OID.clientAuth]
        : o.usage === 'both'
          ? [OID.serverAuth, OID.clientAuth]
          : undefined;
  if (!eku)
    throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'usage must be server, client or both');

  const extensions: Extension[] = [
    { oid: OID.basicConstraints, critical: true, value: der.sequence() }, // cA FALSE (default)
    { oid: OID.keyUsage, critical: true, value: namedBits([0]) }, // digitalSignature
    { oid: OID.extKeyUsage, value: der.sequence(...eku.map((x) => der.oid(x))) },
  ];
  // The subject is never empty here, so subjectAltName is non-critical (RFC 5280 §4.2.1.6).
  if (sans.length > 0) extensions.push({ oid: OID.subjectAltName, value: der.sequence(...sans) });
  extensions.push(
    { oid: OID.subjectKeyIdentifier, value: der.octetString(keyIdentifier(spki)) },
    { oid: OID.authorityKeyIdentifier, value: der.sequence(der.implicit(0, akid)) }, // keyIdentifier [0]
  );
  for (const e of o.extra ?? []) {
    // Standard extensions (id-ce, 2.5.29.*) are this profile's to set: an extra basicConstraints or
    // nameConstraints would change what the certificate may do, which a claim must never do.
    if (e.oid.startsWith('2.5.29.')) {
      throw new BlindfoldError(
        'ERR_INVALID_ARGUMENT',
        `extra extension ${e.oid} is a standard extension`,
      );
    }
    extensions.push({ oid: e.oid, value: e.value });
  }

  const certDer = signCertificate(
    {
      serial: o.serial ?? randomSerial(),
      issuer: ca.subject, // byte-for-byte the CA's subject, so name chaining cannot differ
      subject: nameCn(o.commonName),
      ...validity(o.validDays, o),
      spki,
      extensions,
    },
    caKey,
  );
  return derToPem(certDer, 'CERTIFICATE');
}

// ---------------------------------------------------------------------------------------------
// Identities and inspection.

/**
 * Hex SHA-256 of the SubjectPublicKeyInfo DER: an appliance's identity fingerprint. It names the
 * KEY, not a certificate, so it survives certificate renewal. Accepts a KeyObject (public or
 * private), SPKI DER, a public-key PEM or a certificate PEM.
 */
export function spkiFingerprint(k: KeyObject | Uint8Array | string): string {
  return createHash('sha256')
    .update(spkiDerOf(toPublicKey(k)))
    .digest('hex');
}

export interface Identity {
  publicKey: KeyObject;
  privateKey: KeyObject;
  /** PKCS#8 PEM of the private key. */
  keyPem: string;
  spkiDer: Uint8Array;
  /** spkiFingerprint(publicKey). */
  fingerprint: string;
}

/** A fresh ECDSA P-256 key pair and its fingerprint. */
export function generateIdentity(): Identity {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spkiDer = spkiDerOf(publicKey);
  return {
    publicKey,
    privateKey,
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    spkiDer,
    fingerprint: createHash('sha256').update(spkiDer).digest('hex'),
  };
}

function certDerOf(cert: string | Uint8Array): Uint8Array {
  return typeof cert === 'string' ? pemToDer(cert, 'CERTIFICATE') : cert;
}

/**
 * The extnValue contents (DER) of extension `oid` in a certificate (PEM or DER), or undefined.
 * Node's X509Certificate exposes no arbitrary extensions; this is how the manager reads back the
 * membership claim it embedded with `extra`. Verify the certificate first: this does not.
 */
export function readExtension(cert: string | Uint8Array, oid: string): Uint8Array | undefined {
  return parseCert(certDerOf(cert)).extensions.get(oid)?.value;
}

/** The dNSName and iPAddress entries of a certificate's subjectAltName (IPs in canonical text). */
export function readSubjectAltNames(cert: string | Uint8Array): {
  dnsNames: string[];
  ipAddresses: string[];
} {
  const out = { dnsNames: [] as string[], ipAddresses: [] as string[] };
  const v = readExtension(cert, OID.subjectAltName);
  if (!v) return out;
  for (const gn of children(readTlv(v, 0).value)) {
    if (gn.tag === 0x82) out.dnsNames.push(Buffer.from(gn.value).toString('latin1'));
    else if (gn.tag === 0x87) out.ipAddresses.push(formatIp(gn.value));
  }
  return out;
}

/** notBefore and notAfter of a certificate (PEM or DER), to the second. */
export function readValidity(cert: string | Uint8Array): { notBefore: Date; notAfter: Date } {
  const { notBefore, notAfter } = parseCert(certDerOf(cert));
  return { notBefore, notAfter };
}

/** The SubjectPublicKeyInfo DER of a certificate (PEM or DER). */
export function readSpki(cert: string | Uint8Array): Uint8Array {
  return parseCert(certDerOf(cert)).spki;
}
