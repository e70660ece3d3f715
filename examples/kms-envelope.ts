/**
 * Envelope encryption with the Blindfold KMS: a fresh data key per message, AES-256-GCM locally,
 * the wrapped key and the encryption context inside the blob (SPEC.md §11.9).
 *
 *   BLINDFOLD_KMS_URL=http://127.0.0.1:7301 BLINDFOLD_KMS_TOKEN=bf-app-… BLINDFOLD_KMS_KEY=orders \
 *     node --import tsx examples/kms-envelope.ts
 */
import { decrypt, encrypt, KmsClient } from '../src/sdk/node.ts';

const kms = new KmsClient({
  endpoint: process.env.BLINDFOLD_KMS_URL ?? 'http://127.0.0.1:7301',
  token: process.env.BLINDFOLD_KMS_TOKEN ?? '',
});
const keyId = process.env.BLINDFOLD_KMS_KEY ?? 'orders';

const order = new TextEncoder().encode(JSON.stringify({ id: 42, card: '4111 1111 1111 1111' }));
const blob = await encrypt(kms, order, { keyId, context: { table: 'orders', row: '42' } });
console.log(`encrypted ${order.length} bytes into a ${blob.length}-byte envelope`);

// Later, anywhere with a token allowed to decrypt with this key:
const { data, context } = await decrypt(kms, blob, { expectContext: { table: 'orders' } });
console.log(`decrypted: ${new TextDecoder().decode(data)} (context ${JSON.stringify(context)})`);

// A small secret can go through Encrypt directly (at most 4096 bytes).
const sealed = await kms.encrypt({ keyId, plaintext: new TextEncoder().encode('db-password') });
const opened = await kms.decrypt({ ciphertextBlob: sealed.ciphertextBlob });
console.log(`small secret round trip: ${new TextDecoder().decode(opened.plaintext)}`);
