/**
 * The transfer package (SPEC.md §5.7 step 3): what the voucher A sends the newcomer B through the
 * manager. The manager holds B's scheme secret key d_B, so it must never see Enc_{D_B}(M) (or, in
 * split mode, M ⊕ r_B) in the clear: the package is sealed to B's IDENTITY key (the ECDSA P-256
 * key of B's membership certificate, which the manager does not hold), and signed by A's
 * identity key so that B knows a member produced it.
 *
 * Sign, then encrypt (the signature names the recipient, so B cannot re-seal A's statement to a
 * third party as if A had sent it there):
 *
 *   tbs       = "blindfold/v1/reconceal-sig" ‖ 0x00 ‖ lp16(utf8(transferId)) ‖ lp16(spki_B) ‖ payload
 *   signature = ECDSA-P256-SHA256(identity key of A, tbs), DER
 *   inner     = utf8(JSON {"payload": b64u(payload), "certificatePem": A's certificate,
 *                          "signature": b64u(signature)})
 *   (e, E)    = fresh P-256 key pair;  E as an uncompressed point (65 bytes)
 *   z         = ECDH(e, identity public key of B)   (32-byte x-coordinate, SEC 1 §3.3.1)
 *   key       = HKDF-SHA256(z, salt = empty, info = "blindfold/v1/reconceal" ‖ 0x00 ‖
 *                           lp16(utf8(transferId)) ‖ lp16(E) ‖ lp16(spki_B), 32)   (deriveKey)
 *   aad       = "blindfold/v1/reconceal" ‖ 0x00 ‖ lp16(utf8(transferId))
 *   package   = u8(0x01) ‖ E[65] ‖ nonce[12, random] ‖ AES-256-GCM(key, nonce, inner, aad) ‖ tag[16]
 *
 * This is the ECIES shape of HPKE base mode (RFC 9180, DHKEM(P-256) + HKDF-SHA256 + AES-256-GCM)
 * without its exact labels; the key is used once. The ephemeral key makes the package useless
 * to a later thief of A's identity key; the transfer id in the AAD and KDF binds it to one
 * transfer.
 */
import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import { concat, fromB64u, fromUtf8, lp16, toB64u, utf8, zeroize } from '../core/bytes.ts';
import { BlindfoldError, decryptFailed } from '../core/errors.ts';
import { deriveKey } from '../core/hash.ts';
import { type VerifiedMember, verifyMembership } from './membership.ts';

const VERSION = 0x01;
const POINT = 65;
const NONCE = 12;
const TAG = 16;

function tbs(transferId: string, recipientSpki: Uint8Array, payload: Uint8Array): Uint8Array {
  return concat(
    utf8('blindfold/v1/reconceal-sig'),
    Uint8Array.of(0),
    lp16(utf8(transferId)),
    lp16(recipientSpki),
    payload,
  );
}

function aad(transferId: string): Uint8Array {
  return concat(utf8('blindfold/v1/reconceal'), Uint8Array.of(0), lp16(utf8(transferId)));
}

function kdf(z: Uint8Array, transferId: string, epk: Uint8Array, recipientSpki: Uint8Array) {
  return deriveKey(
    z,
    'reconceal',
    concat(lp16(utf8(transferId)), lp16(epk), lp16(recipientSpki)),
    32,
  );
}

function pointOf(jwk: { x?: string; y?: string }): Uint8Array {
  return concat(Uint8Array.of(0x04), fromB64u(jwk.x ?? ''), fromB64u(jwk.y ?? ''));
}

export interface SealInput {
  transferId: string;
  payload: Uint8Array;
  /** The recipient's identity key, SPKI DER, taken from its VERIFIED membership certificate. */
  recipientSpki: Uint8Array;
  senderKeyPem: string;
  senderCertificatePem: string;
}

export function sealPackage(o: SealInput): Uint8Array {
  const signature = new Uint8Array(
    sign('sha256', tbs(o.transferId, o.recipientSpki, o.payload), {
      key: createPrivateKey(o.senderKeyPem),
      dsaEncoding: 'der',
    }),
  );
  const inner = utf8(
    JSON.stringify({
      payload: toB64u(o.payload),
      certificatePem: o.senderCertificatePem,
      signature: toB64u(signature),
    }),
  );
  const eph = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const epk = pointOf(eph.publicKey.export({ format: 'jwk' }));
  const recipient = createPublicKey({
    key: Buffer.from(o.recipientSpki),
    format: 'der',
    type: 'spki',
  });
  const z = new Uint8Array(diffieHellman({ privateKey: eph.privateKey, publicKey: recipient }));
  const key = kdf(z, o.transferId, epk, o.recipientSpki);
  zeroize(z);
  const nonce = new Uint8Array(randomBytes(NONCE));
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(aad(o.transferId));
  const ct = concat(new Uint8Array(c.update(inner)), new Uint8Array(c.final()));
  const tag = new Uint8Array(c.getAuthTag());
  zeroize(key);
  zeroize(inner);
  return concat(Uint8Array.of(VERSION), epk, nonce, ct, tag);
}

export interface OpenInput {
  transferId: string;
  pkg: Uint8Array;
  recipientKeyPem: string;
  /** The manager CA the recipient pinned at enrollment. */
  caPem: string;
  now?: number;
}

export interface OpenedPackage {
  payload: Uint8Array;
  sender: VerifiedMember;
  senderCertificatePem: string;
}

/**
 * Opens and authenticates a package: AES-GCM (ERR_DECRYPT, generic), then the sender's membership
 * certificate against the pinned CA and its signature over the payload (ERR_UNAUTHENTICATED).
 */
export function openPackage(o: OpenInput): OpenedPackage {
  if (o.pkg.length < 1 + POINT + NONCE + TAG) {
    throw new BlindfoldError('ERR_DECODE', 'transfer package too short');
  }
  if (o.pkg[0] !== VERSION) {
    throw new BlindfoldError('ERR_UNSUPPORTED_VERSION', `transfer package version ${o.pkg[0]}`);
  }
  const epk = o.pkg.subarray(1, 1 + POINT);
  const nonce = o.pkg.subarray(1 + POINT, 1 + POINT + NONCE);
  const ct = o.pkg.subarray(1 + POINT + NONCE, o.pkg.length - TAG);
  const tag = o.pkg.subarray(o.pkg.length - TAG);
  const me = createPrivateKey(o.recipientKeyPem);
  const mySpki = new Uint8Array(createPublicKey(me).export({ type: 'spki', format: 'der' }));
  let inner: Uint8Array;
  try {
    if (epk[0] !== 0x04) throw new Error('not an uncompressed point');
    const ephPub = createPublicKey({
      key: {
        kty: 'EC',
        crv: 'P-256',
        x: toB64u(epk.subarray(1, 33)),
        y: toB64u(epk.subarray(33)),
      },
      format: 'jwk',
    });
    const z = new Uint8Array(diffieHellman({ privateKey: me, publicKey: ephPub }));
    const key = kdf(z, o.transferId, epk, mySpki);
    zeroize(z);
    const d = createDecipheriv('aes-256-gcm', key, nonce);
    d.setAAD(aad(o.transferId));
    d.setAuthTag(tag);
    inner = concat(new Uint8Array(d.update(ct)), new Uint8Array(d.final()));
    zeroize(key);
  } catch (cause) {
    throw decryptFailed(cause);
  }
  let parsed: { payload: string; certificatePem: string; signature: string };
  try {
    parsed = JSON.parse(fromUtf8(inner));
    zeroize(inner);
    if (
      typeof parsed.payload !== 'string' ||
      typeof parsed.certificatePem !== 'string' ||
      typeof parsed.signature !== 'string'
    ) {
      throw new Error('missing fields');
    }
  } catch (cause) {
    throw new BlindfoldError('ERR_DECODE', 'invalid transfer package contents', { cause });
  }
  const sender = verifyMembership(parsed.certificatePem, o.caPem, o.now);
  const payload = fromB64u(parsed.payload, 'payload');
  const ok = verify(
    'sha256',
    tbs(o.transferId, mySpki, payload),
    { key: createPublicKey(parsed.certificatePem), dsaEncoding: 'der' },
    fromB64u(parsed.signature, 'signature'),
  );
  if (!ok) {
    throw new BlindfoldError(
      'ERR_UNAUTHENTICATED',
      'the transfer package is not signed by the member named in it',
    );
  }
  return { payload, sender, senderCertificatePem: parsed.certificatePem };
}
