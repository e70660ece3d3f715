/**
 * The SDK for Node (SPEC.md §11.9): everything of `index.ts`, with a `KmsClient` that sends its
 * requests over node:http / node:https keep-alive connections (`nodeTransport`) instead of the
 * global fetch. Same API, same errors; the browser bundle keeps `index.ts` and fetch.
 *
 * Why: Node's fetch (undici behind WHATWG streams, Request/Response objects and AbortSignal
 * plumbing) cost ~310 µs of client CPU per small call on loopback against ~130 µs for this
 * transport, and the KMS benchmark's GenerateDataKey and Decrypt ran 18-25 % faster with it
 * (docs/PERFORMANCE.md, "perf11").
 *
 *   import { KmsClient } from './src/sdk/node.ts';
 *   const kms = new KmsClient({ endpoint, token });            // node:https, keep-alive
 *   const pinned = new KmsClient({ endpoint, token, fetch: nodeTransport({ ca: caPem }) });
 */
import http from 'node:http';
import https from 'node:https';
import { BlindfoldError } from '../core/errors.ts';
import { AddressKeyedAgent } from '../platform/https-agent.ts';
import {
  KmsClient as FetchKmsClient,
  type KmsClientOptions,
  type Transport,
  type TransportResponse,
} from './client.ts';

export * from './index.ts';

/**
 * A KMS answer is a small JSON document (a blob is at most MAX_BLOB_BYTES, 8 KiB, before its
 * base64url); anything far larger is not the service, and is not buffered whole.
 */
export const MAX_RESPONSE_BYTES = 16 << 20;

export interface NodeTransportOptions {
  /** CA certificates (PEM) trusted for https endpoints instead of Node's defaults: a private PKI. */
  ca?: string;
  /** Keep-alive connections per endpoint (default 64). */
  maxSockets?: number;
}

/**
 * A Transport over node:http / node:https with keep-alive agents. Redirects are never followed:
 * a 3xx answer rejects, as fetch does with `redirect: 'error'`. Aborting the signal destroys the
 * request.
 */
export function nodeTransport(o: NodeTransportOptions = {}): Transport {
  const maxSockets = o.maxSockets ?? 64;
  const agents = {
    'http:': new http.Agent({ keepAlive: true, maxSockets }),
    'https:': new AddressKeyedAgent({ keepAlive: true, maxSockets, ...(o.ca ? { ca: o.ca } : {}) }),
  };
  return (url, init) =>
    new Promise<TransportResponse>((resolve, reject) => {
      const u = new URL(url);
      const agent = agents[u.protocol as keyof typeof agents];
      if (!agent) {
        reject(new BlindfoldError('ERR_INVALID_ARGUMENT', `unsupported URL scheme in ${url}`));
        return;
      }
      const req = (u.protocol === 'https:' ? https : http).request(
        u,
        { method: init.method, headers: init.headers, agent, signal: init.signal },
        (res) => {
          const status = res.statusCode ?? 0;
          if (status >= 300 && status < 400) {
            res.destroy();
            reject(new Error(`unexpected redirect (HTTP ${status})`));
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_RESPONSE_BYTES) {
              res.destroy(new Error(`the answer is larger than ${MAX_RESPONSE_BYTES} bytes`));
              return;
            }
            chunks.push(c);
          });
          res.on('error', reject);
          res.on('end', () => {
            const body = Buffer.concat(chunks).toString('utf8');
            resolve({
              status,
              ok: status >= 200 && status < 300,
              headers: {
                get: (name) => {
                  const v = res.headers[name.toLowerCase()];
                  return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
                },
              },
              text: async () => body,
            });
          });
        },
      );
      req.on('error', reject);
      req.end(init.body);
    });
}

let shared: Transport | undefined;

/** The KMS client of index.ts, sending over `nodeTransport()` unless given another transport. */
export class KmsClient extends FetchKmsClient {
  constructor(o: KmsClientOptions) {
    shared ??= nodeTransport();
    super({ ...o, fetch: o.fetch ?? shared });
  }
}
