/**
 * The SDK's transport behaviour against real local HTTP servers that misbehave on purpose:
 * retries with backoff on 503 and 429 (honouring Retry-After), no replay of a call that may have
 * been applied, per-attempt timeouts, and the error contract (code, status, requestId). Plus the
 * envelope format's refusals.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BlindfoldError } from '../src/core/errors.ts';
import {
  decodeEnvelope,
  KmsClient as FetchKmsClient,
  type KmsClientOptions,
  type KmsError,
} from '../src/sdk/index.ts';
import { MAX_RESPONSE_BYTES, KmsClient as NodeKmsClient, nodeTransport } from '../src/sdk/node.ts';
import { ensureLocalPki } from '../src/tls/ca-store.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

// Every transport test runs twice: with the global fetch (the browser bundle's transport) and with
// src/sdk/node.ts's node:http transport. Both must behave the same.
for (const [transport, KmsClient] of [
  ['fetch', FetchKmsClient],
  ['node:http', NodeKmsClient],
] as const satisfies readonly (readonly [string, new (o: KmsClientOptions) => FetchKmsClient])[]) {
  describe(`SDK transport (${transport})`, () => {
    let server: Server;
    let url: string;
    let handler: Handler = () => {};
    let hits = 0;

    before(async () => {
      server = createServer((req, res) => {
        hits++;
        handler(req, res);
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    });
    after(async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    });

    const token = `bf-app-${'A'.repeat(43)}`;
    const json = (res: ServerResponse, status: number, body: unknown, headers = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    const err = (code: string) => ({ error: { code, message: `m ${code}`, requestId: 'r-1' } });

    test('503 then success: retried with backoff, the token sent each time', async () => {
      hits = 0;
      const auths: string[] = [];
      handler = (req, res) => {
        auths.push(String(req.headers.authorization));
        if (hits < 3) json(res, 503, err('ERR_UNAVAILABLE'));
        else json(res, 200, { keys: [] });
      };
      const kms = new KmsClient({ endpoint: url, token, retries: 3, backoffMs: 10 });
      assert.deepEqual(await kms.listKeys(), []);
      assert.equal(hits, 3);
      assert.ok(auths.every((a) => a === `Bearer ${token}`));
    });

    test('429 honours Retry-After; without retries the error carries code, status, request id', async () => {
      hits = 0;
      handler = (_req, res) => {
        if (hits === 1) json(res, 429, err('ERR_RATE_LIMITED'), { 'retry-after': '1' });
        else json(res, 200, { keys: [] });
      };
      const kms = new KmsClient({ endpoint: url, token, retries: 2, backoffMs: 1 });
      const t0 = Date.now();
      await kms.listKeys();
      assert.ok(Date.now() - t0 >= 900, 'waited for Retry-After');
      hits = 0;
      const once = new KmsClient({ endpoint: url, token, retries: 0 });
      await assert.rejects(once.listKeys(), (e: unknown) => {
        const k = e as KmsError;
        assert.ok(e instanceof BlindfoldError);
        assert.equal(k.code, 'ERR_RATE_LIMITED');
        assert.equal(k.status, 429);
        assert.equal(k.requestId, 'r-1');
        assert.equal(k.retryAfterMs, 1000);
        return true;
      });
    });

    test('a refusal (4xx) is not retried; a non-replayable call is not repeated after 503', async () => {
      hits = 0;
      handler = (_req, res) => json(res, 403, err('ERR_FORBIDDEN'));
      const kms = new KmsClient({ endpoint: url, token, retries: 3, backoffMs: 1 });
      await assert.rejects(kms.listKeys(), { code: 'ERR_FORBIDDEN' });
      assert.equal(hits, 1);
      hits = 0;
      handler = (_req, res) => json(res, 503, err('ERR_UNAVAILABLE'));
      await assert.rejects(kms.createKey({ keyId: 'x' }), { code: 'ERR_UNAVAILABLE' });
      assert.equal(hits, 1, 'key creation is not replayed');
      hits = 0;
      await assert.rejects(kms.generateDataKey({ keyId: 'x' }), { code: 'ERR_UNAVAILABLE' });
      assert.equal(hits, 4, 'replayable calls are retried');
    });

    test('a server that does not answer: timeout per attempt, then ERR_UNAVAILABLE', async () => {
      hits = 0;
      handler = () => {}; // never answers
      const kms = new KmsClient({ endpoint: url, token, retries: 1, timeoutMs: 150, backoffMs: 1 });
      const t0 = Date.now();
      await assert.rejects(kms.listKeys(), (e: unknown) => {
        assert.equal((e as KmsError).code, 'ERR_UNAVAILABLE');
        assert.match((e as Error).message, /within 150 ms/);
        return true;
      });
      assert.equal(hits, 2);
      assert.ok(Date.now() - t0 < 5000);
    });

    test('a redirect is not followed: the token never reaches the other server', async () => {
      let elsewhere = 0;
      const other = createServer((_req, res) => {
        elsewhere++;
        res.end('{}');
      });
      await new Promise<void>((r) => other.listen(0, '127.0.0.1', () => r()));
      try {
        const to = `http://127.0.0.1:${(other.address() as { port: number }).port}/kms/v1/keys`;
        hits = 0;
        handler = (_req, res) => {
          res.writeHead(307, { location: to });
          res.end();
        };
        const kms = new KmsClient({ endpoint: url, token, retries: 0 });
        await assert.rejects(kms.listKeys(), (e: unknown) => {
          assert.equal((e as KmsError).code, 'ERR_UNAVAILABLE');
          assert.match((e as Error).message, /redirect/);
          return true;
        });
        assert.equal(hits, 1);
        assert.equal(elsewhere, 0);
      } finally {
        other.closeAllConnections();
        await new Promise((r) => other.close(r));
      }
    });

    test('nothing listening: ERR_UNAVAILABLE after the retries', async () => {
      const kms = new KmsClient({
        endpoint: 'http://127.0.0.1:1',
        token,
        retries: 1,
        backoffMs: 1,
      });
      await assert.rejects(kms.listKeys(), { code: 'ERR_UNAVAILABLE' });
    });

    test('tokens that are not application tokens are refused before any call', () => {
      assert.throws(() => new KmsClient({ endpoint: url, token: 'bf-op-x' }), {
        code: 'ERR_INVALID_ARGUMENT',
      });
    });

    test('an answer that is not JSON, or cut short, is ERR_UNAVAILABLE, not a crash', async () => {
      handler = (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<html>proxy error</html>');
      };
      const kms = new KmsClient({ endpoint: url, token, retries: 0 });
      await assert.rejects(kms.listKeys(), (e: unknown) => {
        assert.equal((e as KmsError).code, 'ERR_UNAVAILABLE');
        assert.match((e as Error).message, /HTTP 200 without JSON/);
        return true;
      });
      handler = (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
        res.write('{"keys":');
        setTimeout(() => res.destroy(), 10);
      };
      await assert.rejects(kms.listKeys(), { code: 'ERR_UNAVAILABLE' });
    });
  });
}

describe('SDK node:http transport', () => {
  test('https under a private CA: trusted with nodeTransport({ ca }), refused without', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bf-sdk-pki-'));
    const pki = await ensureLocalPki(dir);
    const tls = createHttpsServer({ key: pki.keyPem, cert: pki.certPem }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"keys":[]}');
    });
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', () => r()));
    try {
      const endpoint = `https://localhost:${(tls.address() as { port: number }).port}`;
      const token = `bf-app-${'A'.repeat(43)}`;
      const trusting = new NodeKmsClient({
        endpoint,
        token,
        retries: 0,
        fetch: nodeTransport({ ca: pki.caCertPem }),
      });
      assert.deepEqual(await trusting.listKeys(), []);
      // One transport, two endpoints: each request reaches its own server, never a connection
      // pooled for the other (the agent keys its pool by address, not by its TLS options).
      const other = createHttpsServer({ key: pki.keyPem, cert: pki.certPem }, (_req, res) =>
        res.end('"other"'),
      );
      await new Promise<void>((r) => other.listen(0, '127.0.0.1', () => r()));
      try {
        const t = nodeTransport({ ca: pki.caCertPem });
        const otherUrl = `https://localhost:${(other.address() as { port: number }).port}/`;
        const ask = async (u: string) =>
          (
            await t(u, {
              method: 'GET',
              headers: {},
              signal: new AbortController().signal,
              redirect: 'error',
            })
          ).text();
        for (let i = 0; i < 3; i++) {
          assert.equal(await ask(`${endpoint}/`), '{"keys":[]}');
          assert.equal(await ask(otherUrl), '"other"');
        }
      } finally {
        other.closeAllConnections();
        await new Promise((r) => other.close(r));
      }
      const stranger = new NodeKmsClient({ endpoint, token, retries: 0 });
      await assert.rejects(stranger.listKeys(), (e: unknown) => {
        assert.equal((e as KmsError).code, 'ERR_UNAVAILABLE');
        assert.match((e as Error).message, /certificate/);
        return true;
      });
    } finally {
      tls.closeAllConnections();
      await new Promise((r) => tls.close(r));
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('an answer larger than MAX_RESPONSE_BYTES is refused without buffering it', async () => {
    const chunk = Buffer.alloc(1 << 20, 0x20);
    let sent = 0;
    const big = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const more = () => {
        while (sent <= MAX_RESPONSE_BYTES + chunk.length) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        res.end();
      };
      res.on('close', () => res.destroy());
      more();
    });
    await new Promise<void>((r) => big.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (big.address() as { port: number }).port;
      const kms = new NodeKmsClient({
        endpoint: `http://127.0.0.1:${port}`,
        token: `bf-app-${'A'.repeat(43)}`,
        retries: 0,
        fetch: nodeTransport(),
      });
      await assert.rejects(kms.listKeys(), (e: unknown) => {
        assert.equal((e as KmsError).code, 'ERR_UNAVAILABLE');
        assert.match((e as Error).message, /larger than 16777216 bytes/);
        return true;
      });
    } finally {
      big.closeAllConnections();
      await new Promise((r) => big.close(r));
    }
  });
});

describe('envelope format', () => {
  const te = new TextEncoder();
  test('refuses bad magic, versions, flags, truncation', () => {
    assert.throws(() => decodeEnvelope(te.encode('XYZ\x01\x00')), { code: 'ERR_DECODE' });
    assert.throws(() => decodeEnvelope(te.encode('BFE\x02\x00\x00\x00\x00\x00')), {
      code: 'ERR_UNSUPPORTED_VERSION',
    });
    assert.throws(() => decodeEnvelope(te.encode('BFE\x01\x01\x00\x02\x00\x00')), {
      code: 'ERR_DECODE',
    });
    const ok = new Uint8Array([...te.encode('BFE'), 1, 0, 0, 2, 0, 0, 0, 1, 9]);
    assert.throws(() => decodeEnvelope(ok), { code: 'ERR_DECODE' }); // no iv and tag
    const withTag = new Uint8Array([...ok, ...new Uint8Array(28)]);
    const d = decodeEnvelope(withTag);
    assert.deepEqual(d.context, {});
    assert.deepEqual(d.kmsBlob, new Uint8Array([9]));
    // a non-canonical context (pairs out of order) is refused
    const ctx = new Uint8Array([0, 2, 0, 1, 98, 0, 0, 0, 1, 97, 0, 0]);
    const bad = new Uint8Array([
      ...te.encode('BFE'),
      1,
      0,
      0,
      ctx.length,
      ...ctx,
      0,
      0,
      ...new Uint8Array(28),
    ]);
    assert.throws(() => decodeEnvelope(bad), { code: 'ERR_DECODE' });
  });
});
