/**
 * The KMS data plane on the appliance (SPEC.md §11.4, §11.5): GenerateDataKey, Encrypt, Decrypt
 * and ReEncrypt over KMS ciphertext blobs. Every call becomes one item operation relayed to the
 * manager with the application's token (Appliance.kmsNewItem / kmsOpenItem), so the manager
 * authorizes and audits it before any work; the item KEK wraps the payload with AES-256-GCM
 * whose associated data binds the blob's prefix and the encryption context.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Appliance, KmsItem } from '../appliance/appliance.ts';
import { concat, zeroize } from '../core/bytes.ts';
import { BlindfoldError, decryptFailed } from '../core/errors.ts';
import {
  type BlobKind,
  blobAad,
  contextHash,
  type DecodedBlob,
  decodeBlob,
  type EncryptionContext,
  encodeBlobPrefix,
  MAX_BLOB_BYTES,
  MAX_ENCRYPT_BYTES,
} from '../core/kms.ts';

function seal(key: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aad);
  const body = Buffer.concat([c.update(plaintext), c.final()]);
  return concat(iv, body, c.getAuthTag());
}

function open(key: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array {
  try {
    const d = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12));
    d.setAAD(aad);
    d.setAuthTag(sealed.subarray(sealed.length - 16));
    return new Uint8Array(
      Buffer.concat([d.update(sealed.subarray(12, sealed.length - 16)), d.final()]),
    );
  } catch (e) {
    throw decryptFailed(e);
  }
}

export interface KeyVersion {
  keyId: string;
  keyVersion: number;
  managerVersion: number;
}

function versionOf(f: { keyring: string; masterVersion: number; managerVersion: number }) {
  return { keyId: f.keyring, keyVersion: f.masterVersion, managerVersion: f.managerVersion };
}

/**
 * Ticket failures are the KMS's "this blob, key and context do not belong together": one vague
 * ERR_DECRYPT for all of them (no oracle, SPEC.md §2.4); everything else passes unchanged.
 */
export function asDecryptFailure(e: unknown): unknown {
  if (e instanceof BlindfoldError && e.code === 'ERR_TICKET_INVALID') {
    return new BlindfoldError(
      'ERR_DECRYPT',
      'decryption failed: the ciphertext blob, its key and the encryption context do not match',
    );
  }
  return e;
}

export interface DataKeyOut extends KeyVersion {
  blob: Uint8Array;
  plaintext?: Uint8Array;
  clientCiphertext?: Uint8Array;
}

export interface DecryptOut extends KeyVersion {
  kind: BlobKind;
  plaintext?: Uint8Array;
  clientCiphertext?: Uint8Array;
}

export class KmsDataPlane {
  constructor(private readonly appliance: Appliance) {}

  private async create(
    token: string,
    operation: string,
    keyId: string,
    context: EncryptionContext,
    kind: BlobKind,
    payload?: Uint8Array,
    clientKey?: Uint8Array,
  ): Promise<{ blob: Uint8Array; item: KmsItem }> {
    const ctx = contextHash(context);
    const nonce = new Uint8Array(randomBytes(16));
    const item = await this.appliance.kmsNewItem(
      keyId,
      { token, operation, contextHash: ctx, clientKey },
      nonce,
    );
    const prefix = encodeBlobPrefix({ kind, ...item.fields });
    if (kind === 'client-blinded') return { blob: prefix, item };
    const kek = item.kek!;
    try {
      return { blob: concat(prefix, seal(kek, blobAad(prefix, ctx), payload!)), item };
    } finally {
      zeroize(kek);
    }
  }

  async generateDataKey(
    token: string,
    keyId: string,
    context: EncryptionContext,
    clientKey?: Uint8Array,
  ): Promise<DataKeyOut> {
    if (clientKey) {
      const { blob, item } = await this.create(
        token,
        'generate-data-key',
        keyId,
        context,
        'client-blinded',
        undefined,
        clientKey,
      );
      return { ...versionOf(item.fields), blob, clientCiphertext: item.clientCiphertext! };
    }
    const dataKey = new Uint8Array(randomBytes(32));
    const { blob, item } = await this.create(
      token,
      'generate-data-key',
      keyId,
      context,
      'data-key',
      dataKey,
    );
    return { ...versionOf(item.fields), blob, plaintext: dataKey };
  }

  async encrypt(token: string, keyId: string, context: EncryptionContext, data: Uint8Array) {
    if (data.length > MAX_ENCRYPT_BYTES) {
      throw new BlindfoldError(
        'ERR_TOO_LARGE',
        `Encrypt takes at most ${MAX_ENCRYPT_BYTES} bytes; encrypt larger data locally with a data key (GenerateDataKey, or the SDK's encrypt())`,
      );
    }
    const { blob, item } = await this.create(token, 'encrypt', keyId, context, 'data', data);
    return { ...versionOf(item.fields), blob };
  }

  /** Opens a blob: its payload (data key or data), or Enc_U(S_i) for a client-blinded blob. */
  async decrypt(
    token: string,
    blobBytes: Uint8Array,
    context: EncryptionContext,
    o: { keyId?: string; clientKey?: Uint8Array; operation?: 'decrypt' | 're-encrypt' } = {},
  ): Promise<DecryptOut> {
    const blob = parseBlob(blobBytes);
    if (o.keyId !== undefined && o.keyId !== blob.keyring) {
      throw new BlindfoldError(
        'ERR_INVALID_ARGUMENT',
        `this ciphertext was made with key ${blob.keyring}, not ${o.keyId}`,
      );
    }
    if (blob.kind === 'client-blinded' && !o.clientKey) {
      throw new BlindfoldError(
        'ERR_INVALID_ARGUMENT',
        'this ciphertext holds a client-blinded key: send your clientKey to open it',
      );
    }
    if (blob.kind !== 'client-blinded' && o.clientKey) {
      throw new BlindfoldError(
        'ERR_INVALID_ARGUMENT',
        'clientKey is only for client-blinded ciphertexts; this one the service can open',
      );
    }
    const ctx = contextHash(context);
    let out: { kek?: Uint8Array; clientCiphertext?: Uint8Array };
    try {
      out = await this.appliance.kmsOpenItem(blob, {
        token,
        operation: o.operation ?? 'decrypt',
        contextHash: ctx,
        clientKey: o.clientKey,
      });
    } catch (e) {
      throw asDecryptFailure(e);
    }
    if (out.clientCiphertext) {
      return { ...versionOf(blob), kind: blob.kind, clientCiphertext: out.clientCiphertext };
    }
    try {
      const plaintext = open(out.kek!, blobAad(blob.prefix, ctx), blob.sealed);
      return { ...versionOf(blob), kind: blob.kind, plaintext };
    } finally {
      zeroize(out.kek);
    }
  }

  /** Decrypts under the source and encrypts under the destination, inside the appliance. */
  async reEncrypt(
    token: string,
    blobBytes: Uint8Array,
    sourceContext: EncryptionContext,
    destinationKeyId: string,
    destinationContext: EncryptionContext,
    sourceKeyId?: string,
  ) {
    const blob = parseBlob(blobBytes);
    if (blob.kind === 'client-blinded') {
      throw new BlindfoldError(
        'ERR_INVALID_ARGUMENT',
        'a client-blinded key cannot be re-encrypted by the service, which never holds it: decrypt it with your client key and wrap it again',
      );
    }
    const src = await this.decrypt(token, blobBytes, sourceContext, {
      keyId: sourceKeyId,
      operation: 're-encrypt',
    });
    try {
      const { blob: out, item } = await this.create(
        token,
        're-encrypt',
        destinationKeyId,
        destinationContext,
        blob.kind,
        src.plaintext!,
      );
      return { ...versionOf(item.fields), sourceKeyId: blob.keyring, blob: out };
    } finally {
      zeroize(src.plaintext);
    }
  }
}

export function parseBlob(b: Uint8Array): DecodedBlob {
  if (b.length > MAX_BLOB_BYTES) {
    throw new BlindfoldError(
      'ERR_TOO_LARGE',
      `a KMS ciphertext blob is at most ${MAX_BLOB_BYTES} bytes`,
    );
  }
  return decodeBlob(b);
}
