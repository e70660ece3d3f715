/**
 * Every program in examples/ runs against real manager and appliance processes and succeeds.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { KmsClient } from '../src/sdk/index.ts';
import { type KmsDeployment, startKmsDeployment } from './helpers/kms.ts';

const run = promisify(execFile);
const EXAMPLES = resolve(import.meta.dirname, '../examples');

/** What each example needs: the key it uses and what its output must say. */
const EXPECT: Record<string, { key: string; mode: 'hom2' | 'hom2-opt'; output: RegExp[] }> = {
  'kms-envelope.ts': {
    key: 'orders',
    mode: 'hom2-opt',
    output: [/decrypted: \{"id":42/, /small secret round trip: db-password/],
  },
  'kms-client-blinded.ts': {
    key: 'private',
    mode: 'hom2',
    output: [/client-blinded data key of 32 bytes/, /recovered the same key: true/],
  },
};

describe('examples', () => {
  let d: KmsDeployment;
  let token: string;

  before(async () => {
    d = await startKmsDeployment();
    const app = await d.newApp('examples', [
      'create-key',
      'generate-data-key',
      'decrypt',
      'encrypt',
    ]);
    token = app.token;
    const kms = new KmsClient({ endpoint: d.url, token });
    for (const e of Object.values(EXPECT)) await kms.createKey({ keyId: e.key, mode: e.mode });
  });
  after(async () => {
    await d?.stop();
  });

  test('every example is covered here', async () => {
    const files = (await readdir(EXAMPLES)).filter((f) => f.endsWith('.ts')).sort();
    assert.deepEqual(files, Object.keys(EXPECT).sort());
  });

  for (const [file, e] of Object.entries(EXPECT)) {
    test(file, async () => {
      const { stdout } = await run(process.execPath, ['--import', 'tsx', join(EXAMPLES, file)], {
        env: {
          ...process.env,
          BLINDFOLD_KMS_URL: d.url,
          BLINDFOLD_KMS_TOKEN: token,
          BLINDFOLD_KMS_KEY: e.key,
        },
        timeout: 60_000,
      });
      for (const re of e.output) assert.match(stdout, re);
    });
  }
});
