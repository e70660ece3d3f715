/**
 * The SDK's browser build (esbuild, built here in-process) in real headless Chromium: a page of
 * another origin, allowed by the appliance's --kms-cors, runs one client-blinded round trip
 * (GenerateDataKey with a client key, Decrypt, an envelope) against real manager and appliance
 * processes. The data key exists only in the page.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildSdk } from '../scripts/build-sdk.ts';
import { KmsClient } from '../src/sdk/index.ts';
import { chromiumUnavailable, launchChromium } from './helpers/browser.ts';
import { cleanup, tmpDir } from './helpers/deploy.ts';
import { type KmsDeployment, startKmsDeployment } from './helpers/kms.ts';

const skip = chromiumUnavailable();

describe('SDK browser build in Chromium', { skip }, () => {
  let d: KmsDeployment;
  let web: Server;
  let origin: string;
  let dir: string;
  let token: string;

  before(async () => {
    dir = await tmpDir();
    const bundle = await buildSdk(join(dir, 'sdk.js'));
    const js = await readFile(bundle);
    web = createServer((req, res) => {
      if (req.url === '/sdk.js') {
        res.writeHead(200, { 'content-type': 'text/javascript' });
        res.end(js);
      } else {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<!doctype html><title>sdk test</title><p>sdk test</p>');
      }
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
    const addr = web.address() as { port: number };
    origin = `http://127.0.0.1:${addr.port}`;
    d = await startKmsDeployment({ applianceArgs: ['--kms-cors', origin] });
    const app = await d.newApp('browser', ['create-key', 'generate-data-key', 'decrypt']);
    token = app.token;
    await new KmsClient({ endpoint: d.url, token }).createKey({ keyId: 'web', mode: 'hom2-opt' });
  });
  after(async () => {
    await d?.stop();
    await new Promise((r) => web?.close(r));
    await cleanup(dir);
  });

  test('one client-blinded round trip and an envelope, in the browser', async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(`${origin}/`);
      const out = await page.evaluate(
        async ({ endpoint, token }) => {
          const sdk = await import('/sdk.js' as string);
          const kms = new sdk.KmsClient({ endpoint, token, retries: 0 });
          const context = { page: 'test' };
          const dk = await kms.generateClientBlindedDataKey({ keyId: 'web', context });
          const again = await kms.decrypt({ ciphertextBlob: dk.ciphertextBlob, context });
          const same =
            dk.plaintext.length === 32 &&
            dk.plaintext.every((b: number, i: number) => b === again.plaintext[i]);
          const env = await sdk.encrypt(kms, new TextEncoder().encode('from the browser'), {
            keyId: 'web',
            context,
            clientBlinded: true,
          });
          const opened = await sdk.decrypt(kms, env);
          let wrongContext = '';
          try {
            await kms.decrypt({ ciphertextBlob: dk.ciphertextBlob, context: { page: 'other' } });
          } catch (e) {
            wrongContext = (e as { code: string }).code;
          }
          return {
            same,
            text: new TextDecoder().decode(opened.data),
            wrongContext,
            hasNodeProcess: typeof (globalThis as { process?: unknown }).process !== 'undefined',
          };
        },
        { endpoint: d.url, token },
      );
      assert.deepEqual(out, {
        same: true,
        text: 'from the browser',
        wrongContext: 'ERR_DECRYPT',
        hasNodeProcess: false,
      });
    } finally {
      await browser.close();
    }
  });

  test('CORS: the allowed origin only', async () => {
    const ok = await fetch(`${d.url}/kms/v1/keys`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST' },
    });
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get('access-control-allow-origin'), origin);
    const other = await fetch(`${d.url}/kms/v1/keys`, {
      method: 'OPTIONS',
      headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(other.headers.get('access-control-allow-origin'), null);
  });
});
