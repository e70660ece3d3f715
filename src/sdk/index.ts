/**
 * The Blindfold SDK (SPEC.md §11): a typed KMS client and envelope helpers, for Node ≥ 20 and
 * browsers (fetch + WebCrypto + src/core; no node: imports). Browser bundle: `npm run build:sdk`.
 *
 *   const kms = new KmsClient({ endpoint, token });
 *   const blob = await encrypt(kms, data, { keyId: 'orders', context: { tenant: 't1' } });
 *   const { data } = await decrypt(kms, blob);
 */
export { BlindfoldError, ERROR_CODES, type ErrorCode } from '../core/errors.ts';
export {
  type DataKey,
  type EncryptionContext,
  type KeyVersion,
  KmsClient,
  type KmsClientOptions,
  KmsError,
  type KmsKey,
  type Transport,
  type TransportRequest,
  type TransportResponse,
} from './client.ts';
export {
  type DecodedEnvelope,
  decodeEnvelope,
  decrypt,
  ENVELOPE_VERSION,
  type EncryptOptions,
  encrypt,
} from './envelope.ts';
