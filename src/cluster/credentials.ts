/**
 * Vouching criterion (ii) of the seed, "a database of credentials" (SPEC.md §5.7): the manager
 * vouches for a newcomer (vouchedBy = 'manager', criterion = 'credential') when it presents one
 * of these, each an entry the operator put in the credentials database:
 *
 *   fingerprint   the newcomer's identity key is allow-listed: value = hex SHA-256(SPKI DER). The
 *                 enrollment's proof of possession (a signature by that key) makes it meaningful.
 *   secret        a pre-shared enrollment secret: value = hex SHA-256(utf8(secret)). The secret
 *                 itself is never stored; the operator sees it once, when it is created.
 *   attestation   an attestation document (a cloud instance identity document, a TPM quote...)
 *                 checked by a pluggable `AttestationVerifier`, which returns the document's
 *                 subject; value = that subject.
 *
 * Each entry may be used `maxUses` times (default 1) and names the keyrings the newcomer receives.
 *
 * The built-in verifier refuses every document: attestation formats are platform-specific, so an
 * operator who wants criterion (ii) by attestation provides a verifier (ManagerDeps.attestation)
 * that checks the document's signature chain, freshness and its binding to the enrolling identity
 * key, and returns a stable subject (e.g. "aws:i-0abc..."). Until then, attestation entries can
 * exist in the database but no enrollment can match them.
 */
import { createHash } from 'node:crypto';
import { BlindfoldError } from '../core/errors.ts';

export type CredentialKind = 'fingerprint' | 'secret' | 'attestation';

export interface AttestationContext {
  /** SHA-256 of the enrolling identity key (SPKI DER), hex: a document should bind to it. */
  identityFingerprint: string;
  name: string;
  now: number;
}

export interface AttestationVerifier {
  readonly name: string;
  /**
   * Verifies an attestation document presented at enrollment and returns its subject, which is
   * then looked up in the credentials database. Throws ERR_UNAUTHENTICATED when the document does
   * not verify (or is not bound to the identity key).
   */
  verify(document: Uint8Array, ctx: AttestationContext): Promise<string>;
}

/** The default: no attestation format is trusted until the operator configures a verifier. */
export const refuseAllAttestations: AttestationVerifier = {
  name: 'none',
  async verify() {
    throw new BlindfoldError(
      'ERR_UNAUTHENTICATED',
      'no attestation verifier is configured on this manager: enroll with a token, an allow-listed identity key or a pre-shared secret',
    );
  },
};

/** What the database stores for a pre-shared secret: hex SHA-256 of its UTF-8 bytes. */
export function secretDigest(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

export function isCredentialKind(x: unknown): x is CredentialKind {
  return x === 'fingerprint' || x === 'secret' || x === 'attestation';
}
