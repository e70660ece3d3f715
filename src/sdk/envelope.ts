/**
 * Envelope encryption with the KMS (SPEC.md §11.9): a fresh data key per message from
 * GenerateDataKey (or a client-blinded one), AES-256-GCM here with WebCrypto, and a versioned,
 * self-describing blob that carries the wrapped data key and the encryption context:
 *
 *   envelope = "BFE" ‖ 0x01 ‖ u8(flags) ‖ lp16(canonical context) ‖ lp16(kmsBlob) ‖ iv[12]
 *              ‖ AES-256-GCM(dataKey, iv, data, aad = every byte before iv)
 *
 * flags: 0x00 (no flag is defined in version 1; readers MUST refuse others).
 */
import { concat, equalBytes, lp16, readU16be, u8, utf8 } from '../core/bytes.ts';
import { BlindfoldError, decryptFailed } from '../core/errors.ts';
import { decodeContext, type EncryptionContext, encodeContext } from '../core/kms.ts';
import type { KmsClient } from './client.ts';

export const ENVELOPE_MAGIC = utf8('BFE');
export const ENVELOPE_VERSION = 0x01;
/** One AES-GCM call over the whole message: envelopes are for up to 256 MiB. */
export const MAX_ENVELOPE_DATA = 256 * 1024 * 1024;

export interface EncryptOptions {
  keyId: string;
  context?: EncryptionContext;
  /** Use a client-blinded data key (T7): no Blindfold component ever holds it. */
  clientBlinded?: boolean;
}

function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new BlindfoldError('ERR_UNAVAILABLE', 'WebCrypto (crypto.subtle) is not available');
  return s;
}

async function aesKey(raw: Uint8Array, usage: 'encrypt' | 'decrypt'): Promise<CryptoKey> {
  try {
    return await subtle().importKey('raw', raw as BufferSource, 'AES-GCM', false, [usage]);
  } finally {
    raw.fill(0); // the non-extractable CryptoKey is the only copy left
  }
}

/** Encrypts `data` under a fresh data key of `keyId`; returns the envelope. */
export async function encrypt(
  kms: KmsClient,
  data: Uint8Array,
  o: EncryptOptions,
): Promise<Uint8Array> {
  if (data.length > MAX_ENVELOPE_DATA) {
    throw new BlindfoldError('ERR_TOO_LARGE', `envelopes hold at most ${MAX_ENVELOPE_DATA} bytes`);
  }
  const context = o.context ?? {};
  const dk = o.clientBlinded
    ? await kms.generateClientBlindedDataKey({ keyId: o.keyId, context })
    : await kms.generateDataKey({ keyId: o.keyId, context });
  const key = await aesKey(dk.plaintext!, 'encrypt');
  const iv = globalThis.crypto.getRandomValues(new Uint8Array(12));
  const head = concat(
    ENVELOPE_MAGIC,
    u8(ENVELOPE_VERSION),
    u8(0),
    lp16(encodeContext(context)),
    lp16(dk.ciphertextBlob),
  );
  const ct = await subtle().encrypt(
    { name: 'AES-GCM', iv, additionalData: head as BufferSource },
    key,
    data as BufferSource,
  );
  return concat(head, iv, new Uint8Array(ct));
}

export interface DecodedEnvelope {
  context: EncryptionContext;
  kmsBlob: Uint8Array;
  head: Uint8Array;
  iv: Uint8Array;
  sealed: Uint8Array;
}

export function decodeEnvelope(b: Uint8Array): DecodedEnvelope {
  const bad = (d: string) => new BlindfoldError('ERR_DECODE', `invalid envelope: ${d}`);
  if (b.length < 9) throw bad('too short');
  if (!equalBytes(b.subarray(0, 3), ENVELOPE_MAGIC)) throw bad('bad magic');
  if (b[3] !== ENVELOPE_VERSION) {
    throw new BlindfoldError('ERR_UNSUPPORTED_VERSION', `unknown envelope version ${b[3]}`);
  }
  if (b[4] !== 0) throw bad('unknown flags');
  let off = 5;
  const take = () => {
    if (off + 2 > b.length) throw bad('truncated');
    const n = readU16be(b, off);
    if (off + 2 + n > b.length) throw bad('truncated');
    const v = b.subarray(off + 2, off + 2 + n);
    off += 2 + n;
    return v;
  };
  const context = decodeContext(take());
  const kmsBlob = take();
  if (off + 12 + 16 > b.length) throw bad('truncated');
  return {
    context,
    kmsBlob: kmsBlob.slice(),
    head: b.slice(0, off),
    iv: b.slice(off, off + 12),
    sealed: b.slice(off + 12),
  };
}

/**
 * Decrypts an envelope. The context comes from the envelope itself (authenticated by the KMS
 * and by AES-GCM); pass `expectContext` to require that it contains these pairs.
 */
export async function decrypt(
  kms: KmsClient,
  envelope: Uint8Array,
  o: { expectContext?: EncryptionContext } = {},
): Promise<{ data: Uint8Array; context: EncryptionContext; keyId: string }> {
  const e = decodeEnvelope(envelope);
  for (const [k, v] of Object.entries(o.expectContext ?? {})) {
    if (e.context[k] !== v) {
      throw new BlindfoldError(
        'ERR_INVALID_ARGUMENT',
        `the envelope's context does not have ${k} = ${JSON.stringify(v)}`,
      );
    }
  }
  const dk = await kms.decrypt({ ciphertextBlob: e.kmsBlob, context: e.context });
  const key = await aesKey(dk.plaintext, 'decrypt');
  try {
    const pt = await subtle().decrypt(
      { name: 'AES-GCM', iv: e.iv as BufferSource, additionalData: e.head as BufferSource },
      key,
      e.sealed as BufferSource,
    );
    return { data: new Uint8Array(pt), context: e.context, keyId: dk.keyId };
  } catch (cause) {
    throw decryptFailed(cause);
  }
}
