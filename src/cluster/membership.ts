/**
 * Membership certificates (SPEC.md §5.7; seed: "flagged trusted"). The client certificate the
 * manager's CA issues at enrollment IS the membership certificate: besides the appliance's
 * identity key and id (CN) it carries a non-critical extension with the membership claim
 *
 *   OID   2.25.178468744021536748849731115066942849072   (a UUID OID, ITU-T X.667: no registry
 *                                                        needed, collision-free by construction)
 *   value UTF8String( JSON {"v":1, "applianceId", "vouchedBy", "criterion", "issuedAt",
 *                           "invite"?} )  with keys in that order (JSON.stringify, no spaces)
 *
 * `vouchedBy` is 'operator', 'manager' (criterion ii) or the vouching appliance's id; `criterion`
 * is 'token' (criterion i, an invite), 'credential' (criterion ii) or 'operator'; `issuedAt` is
 * Unix ms; `invite` is the first 32 hex digits of SHA-256(token) when an appliance invited the
 * newcomer, so that the voucher can match the certificate to an invite it made (and to the
 * identity fingerprint it pinned there).
 *
 * The manager checks membership on every request (mutual TLS: chain to its CA, validity, a known
 * and non-revoked appliance). Members check a peer's certificate with `verifyMembership` before
 * they accept a transfer package or seal one: chain to the pinned CA, validity at `now`, the claim
 * present and naming the certificate's CN. Revocation is known to the manager only; a member
 * learns it from the manager's refusals.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { concat, lp16, utf8 } from '../core/bytes.ts';
import { BlindfoldError } from '../core/errors.ts';
import { sha256 } from '../core/hash.ts';
import { der, readExtension } from '../tls/x509.ts';

export const MEMBERSHIP_OID = '2.25.178468744021536748849731115066942849072';

export type Criterion = 'token' | 'credential' | 'operator';

export interface MembershipClaim {
  v: 1;
  applianceId: string;
  vouchedBy: string;
  criterion: Criterion;
  issuedAt: number;
  invite?: string;
}

const CRITERIA: readonly string[] = ['token', 'credential', 'operator'];

/** The extension for `issueCertificate({ extra: [...] })`. */
export function membershipExtension(c: MembershipClaim): { oid: string; value: Uint8Array } {
  const ordered: MembershipClaim = {
    v: 1,
    applianceId: c.applianceId,
    vouchedBy: c.vouchedBy,
    criterion: c.criterion,
    issuedAt: c.issuedAt,
    ...(c.invite ? { invite: c.invite } : {}),
  };
  return { oid: MEMBERSHIP_OID, value: der.utf8String(JSON.stringify(ordered)) };
}

/** Reads one DER UTF8String TLV (tag 0x0c, definite length) that fills `b` exactly. */
function readUtf8String(b: Uint8Array): string {
  const bad = () => new BlindfoldError('ERR_DECODE', 'invalid membership claim encoding');
  if (b.length < 2 || b[0] !== 0x0c) throw bad();
  let len = b[1]!;
  let off = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || b.length < 2 + n) throw bad();
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[2 + i]!;
    off = 2 + n;
  }
  if (off + len !== b.length) throw bad();
  return new TextDecoder('utf-8', { fatal: true }).decode(b.subarray(off));
}

/** Parses the claim of a certificate (PEM or DER) WITHOUT verifying the certificate. */
export function readMembershipClaim(cert: string | Uint8Array): MembershipClaim {
  const ext = readExtension(cert, MEMBERSHIP_OID);
  if (!ext) {
    throw new BlindfoldError('ERR_UNAUTHENTICATED', 'the certificate carries no membership claim');
  }
  let c: MembershipClaim;
  try {
    c = JSON.parse(readUtf8String(ext)) as MembershipClaim;
  } catch (cause) {
    throw new BlindfoldError('ERR_DECODE', 'invalid membership claim', { cause });
  }
  if (
    c === null ||
    typeof c !== 'object' ||
    c.v !== 1 ||
    typeof c.applianceId !== 'string' ||
    typeof c.vouchedBy !== 'string' ||
    !CRITERIA.includes(c.criterion) ||
    !Number.isInteger(c.issuedAt) ||
    (c.invite !== undefined && !/^[0-9a-f]{32}$/.test(c.invite))
  ) {
    throw new BlindfoldError('ERR_DECODE', 'invalid membership claim');
  }
  return c;
}

export interface VerifiedMember {
  claim: MembershipClaim;
  /** SHA-256 of the certificate's SubjectPublicKeyInfo, hex: the identity fingerprint. */
  fingerprint: string;
  /** The certificate's public key as SPKI DER. */
  spkiDer: Uint8Array;
}

/**
 * Verifies a member's certificate against the CA the caller pinned at enrollment: signature and
 * issuer name (X509Certificate.verify + checkIssued), validity at `now`, the membership claim, and
 * that the claim names the certificate's CN. Every failure is ERR_UNAUTHENTICATED (a forged or
 * expired certificate is an authentication failure, whatever the detail).
 */
export function verifyMembership(
  certPem: string,
  caPem: string,
  now: number = Date.now(),
): VerifiedMember {
  let cert: X509Certificate;
  let ca: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
    ca = new X509Certificate(caPem);
  } catch (cause) {
    throw new BlindfoldError('ERR_UNAUTHENTICATED', 'not a certificate', { cause });
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
    throw new BlindfoldError(
      'ERR_UNAUTHENTICATED',
      'the membership certificate is not signed by the manager CA',
    );
  }
  if (now < Date.parse(cert.validFrom) || now > Date.parse(cert.validTo)) {
    throw new BlindfoldError(
      'ERR_UNAUTHENTICATED',
      `the membership certificate is not valid now (valid ${cert.validFrom} to ${cert.validTo})`,
    );
  }
  let claim: MembershipClaim;
  try {
    claim = readMembershipClaim(certPem);
  } catch (cause) {
    throw new BlindfoldError('ERR_UNAUTHENTICATED', 'the membership claim is missing or invalid', {
      cause,
    });
  }
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
  if (cn !== claim.applianceId) {
    throw new BlindfoldError(
      'ERR_UNAUTHENTICATED',
      'the membership claim names another appliance than the certificate',
    );
  }
  const spkiDer = new Uint8Array(cert.publicKey.export({ type: 'spki', format: 'der' }));
  return {
    claim,
    fingerprint: createHash('sha256').update(spkiDer).digest('hex'),
    spkiDer,
  };
}

/** The invite id of a token: the first 32 hex digits of SHA-256(utf8(token)). */
export function inviteId(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex').slice(0, 32);
}

/**
 * What a newcomer signs at enrollment to prove it holds its identity key (SPEC.md §5.7):
 *   "blindfold/v1/enroll" ‖ 0x00 ‖ lp16(utf8(name)) ‖ lp16(spki) ‖ SHA-256(material)
 * where material is utf8(token), utf8(secret), the attestation document, or empty for an
 * allow-listed key. Binding the token or secret makes a captured proof useless with any other.
 * The proof is ECDSA-P256-SHA256, DER.
 */
export function enrollProofInput(
  name: string,
  spkiDer: Uint8Array,
  material: Uint8Array,
): Uint8Array {
  return concat(
    utf8('blindfold/v1/enroll'),
    Uint8Array.of(0),
    lp16(utf8(name)),
    lp16(spkiDer),
    sha256(material),
  );
}

export function proofMaterial(input: {
  token?: string;
  credential?: { secret?: string; document?: Uint8Array };
}): Uint8Array {
  if (input.token !== undefined) return utf8(input.token);
  if (input.credential?.secret !== undefined) return utf8(input.credential.secret);
  if (input.credential?.document !== undefined) return input.credential.document;
  return new Uint8Array(0);
}
