/**
 * SHA-256 through OpenSSL (`crypto.createHash`), for the audit writers' hot path (core/audit.ts
 * `linkEntries`): the same function as the core's libsodium `sha256`, without a WASM round trip
 * per part. test/vectors.test.ts (audit.json) checks that both link a log to the same hashes.
 */
import { createHash } from 'node:crypto';
import type { Sha256 } from '../core/audit.ts';

export const nodeSha256: Sha256 = (...parts) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};
