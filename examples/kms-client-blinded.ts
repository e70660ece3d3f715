/**
 * Client-blinded data keys (threat model T7, SPEC.md §5.8): the SDK sends a public key U = u·B, the
 * service answers the key encrypted under U, and only this process ever holds the key: no
 * manager, appliance or database does. Needs an ec-elgamal key in mode hom2 or hom2-opt.
 *
 *   BLINDFOLD_KMS_URL=http://127.0.0.1:7301 BLINDFOLD_KMS_TOKEN=bf-app-… BLINDFOLD_KMS_KEY=private \
 *     node --import tsx examples/kms-client-blinded.ts
 */
import { KmsClient } from '../src/sdk/node.ts';

const kms = new KmsClient({
  endpoint: process.env.BLINDFOLD_KMS_URL ?? 'http://127.0.0.1:7301',
  token: process.env.BLINDFOLD_KMS_TOKEN ?? '',
});
const keyId = process.env.BLINDFOLD_KMS_KEY ?? 'private';
const context = { user: 'alice' };

const key = await kms.generateClientBlindedDataKey({ keyId, context });
console.log(`client-blinded data key of ${key.plaintext.length} bytes, version ${key.keyVersion}`);

// Store key.ciphertextBlob with the data; to get the key back:
const again = await kms.decrypt({ ciphertextBlob: key.ciphertextBlob, context });
const same = again.plaintext.every((b, i) => b === key.plaintext[i]);
console.log(`recovered the same key: ${same}`);
key.plaintext.fill(0);
again.plaintext.fill(0);
if (!same) process.exit(1);
