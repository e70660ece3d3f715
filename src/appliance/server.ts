/**
 * The appliance's local API for customer applications (seed: "customer application ... may use
 * an appliance to perform secure storage I/O"): loopback only, authenticated by a bearer token
 * kept in a 0600 file. Bytes and streams in and out (encrypt/decrypt), and data keys for callers
 * that encrypt themselves (the CLI, the SDK's envelope helpers).
 */
import { PassThrough, Readable } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { registerLocalClusterRoutes } from '../cluster/local-routes.ts';
import type { ClusterMember } from '../cluster/member.ts';
import { fromB64u, toB64u, zeroize } from '../core/bytes.ts';
import { BlindfoldError } from '../core/errors.ts';
import { decodeHeader, freshFileSecrets } from '../core/format.ts';
import { registerKmsApi } from '../kms/api.ts';
import {
  b64u,
  errorResponses,
  installErrorHandling,
  installMetrics,
  keyringName,
  Metrics,
  requireBearer,
} from '../server/common.ts';
import type { Appliance } from './appliance.ts';
import { parallelFor } from './chunks.ts';
import { decryptStream, encryptStream, readHeader, sealFileHeader, unwrapDek } from './stream.ts';

export interface LocalServerOptions {
  appliance: Appliance;
  tokenHash: Uint8Array;
  logger?: boolean | object;
  metrics?: Metrics;
  /** The cluster side of this appliance (invites, joining), SPEC.md §5.7. */
  member?: ClusterMember;
  /** The console import key's fingerprint, when console imports are on (SPEC.md §5.9). */
  importKeyFingerprint?: () => string | undefined;
  /** Browser origins allowed to call the KMS API (SPEC.md §11.8). */
  kmsCorsOrigins?: string[];
}

export async function buildLocalServer(o: LocalServerOptions): Promise<FastifyInstance> {
  const metrics = o.metrics ?? new Metrics();
  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: 1 << 20,
    genReqId: () => crypto.randomUUID(),
    // Schemas are contracts: unknown fields are refused, not dropped, and no type coercion.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });
  installErrorHandling(app);
  installMetrics(app, metrics, 'appliance');
  // Streams are passed through untouched: constant memory whatever the size.
  app.addContentTypeParser('application/octet-stream', (_req, payload, done) =>
    done(null, payload),
  );

  const auth = (request: FastifyRequest) => {
    requireBearer(
      request,
      o.tokenHash,
      'send Authorization: Bearer <token from the appliance local-api.token file>',
    );
  };

  app.get('/health', async () => ({ status: 'ok' }));
  // The KMS API for applications (SPEC.md §11), authenticated by application tokens that the
  // manager checks; the local token below does not open it.
  registerKmsApi(app, { appliance: o.appliance, corsOrigins: o.kmsCorsOrigins });
  if (o.member) registerLocalClusterRoutes(app, { member: o.member, auth });
  app.get('/metrics', async (_r, reply) => {
    void reply.header('content-type', 'text/plain; version=0.0.4');
    return metrics.render();
  });

  app.get(
    '/v1/status',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: {
              applianceId: { type: 'string' },
              name: { type: 'string' },
              managerUrl: { type: 'string' },
              manager: { type: 'string' },
              importKeyFingerprint: { type: 'string' },
              // threshold deployments (SPEC.md §5.6): each manager node's reachability
              nodes: {
                type: 'array',
                items: {
                  type: 'object',
                  additionalProperties: false,
                  properties: {
                    index: { type: 'integer' },
                    url: { type: 'string' },
                    status: { type: 'string' },
                  },
                },
              },
              keyrings: {
                type: 'array',
                items: {
                  type: 'object',
                  additionalProperties: false,
                  properties: {
                    name: { type: 'string' },
                    mode: { type: 'string' },
                    scheme: { type: 'string' },
                    masterVersion: { type: 'integer' },
                    managerVersion: { type: 'integer' },
                  },
                },
              },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      auth(request);
      const s = o.appliance.state;
      let manager = 'reachable';
      try {
        await o.appliance.client.request('GET', '/health', undefined, { idempotent: false });
      } catch (e) {
        manager = `unreachable: ${(e as Error).message}`;
      }
      const nodes = await Promise.all(
        o.appliance.nodes.map(async (n) => {
          try {
            await n.client.request('GET', '/health', undefined, { idempotent: false });
            return { index: n.index, url: n.url, status: 'reachable' };
          } catch (e) {
            return { index: n.index, url: n.url, status: `unreachable: ${(e as Error).message}` };
          }
        }),
      );
      return {
        ...(nodes.length > 0 ? { nodes } : {}),
        applianceId: s.applianceId,
        name: s.name,
        managerUrl: s.managerUrl,
        manager,
        ...(o.importKeyFingerprint?.() ? { importKeyFingerprint: o.importKeyFingerprint() } : {}),
        keyrings: Object.entries(s.keyrings).map(([name, k]) => {
          const latest = k.concealments.reduce((a, b) =>
            b.masterVersion > a.masterVersion ||
            (b.masterVersion === a.masterVersion && b.managerVersion > a.managerVersion)
              ? b
              : a,
          );
          return {
            name,
            mode: k.mode,
            scheme: k.scheme,
            masterVersion: latest.masterVersion,
            managerVersion: latest.managerVersion,
          };
        }),
      };
    },
  );

  const dataKeyOut = {
    type: 'object',
    additionalProperties: false,
    properties: { header: { type: 'string' }, dek: { type: 'string' } },
  } as const;

  app.post<{ Body: { keyring: string; ttlSeconds?: number } }>(
    '/v1/datakey',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['keyring'],
          properties: {
            keyring: keyringName,
            ttlSeconds: { type: 'integer', minimum: 0, maximum: 1e9 },
          },
        },
        response: { 200: dataKeyOut, ...errorResponses },
      },
    },
    async (request) => {
      auth(request);
      const item = await o.appliance.newItem(request.body.keyring, {
        ttlSeconds: request.body.ttlSeconds,
      });
      const { dek, fileNonce } = freshFileSecrets();
      const header = sealFileHeader({ ...item.fields, fileNonce }, item.kek, dek);
      zeroize(item.kek);
      const out = { header: toB64u(header), dek: toB64u(dek) };
      zeroize(dek);
      return out;
    },
  );

  app.post<{ Body: { header: string } }>(
    '/v1/datakey/open',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['header'],
          properties: { header: b64u(140000, 12) },
        },
        response: { 200: dataKeyOut, ...errorResponses },
      },
    },
    async (request) => {
      auth(request);
      const header = fromB64u(request.body.header, 'header');
      const kek = await o.appliance.openItem(header);
      const dek = unwrapDek(header, kek);
      zeroize(kek);
      const out = { header: request.body.header, dek: toB64u(dek) };
      zeroize(dek);
      return out;
    },
  );

  app.post<{ Body: { header: string } }>(
    '/v1/datakey/rewrap',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['header'],
          properties: { header: b64u(140000, 12) },
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { header: { type: 'string' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      auth(request);
      // Rotation without re-encryption (SPEC.md §6.4): the DEK moves to a new item under the
      // newest versions; it never leaves the appliance, and the chunks stay as they are.
      const old = decodeHeader(fromB64u(request.body.header, 'header'));
      const oldKek = await o.appliance.openItem(old);
      const dek = unwrapDek(old, oldKek);
      zeroize(oldKek);
      try {
        const item = await o.appliance.newItem(old.fields.keyring);
        const header = sealFileHeader(
          { ...item.fields, fileNonce: old.fields.fileNonce },
          item.kek,
          dek,
        );
        zeroize(item.kek);
        return { header: toB64u(header) };
      } finally {
        zeroize(dek);
      }
    },
  );

  app.post<{ Body: { keyring: string; master?: boolean } }>(
    '/v1/keys/rotate',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['keyring'],
          properties: { keyring: keyringName, master: { type: 'boolean' } },
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { masterVersion: { type: 'integer' }, managerVersion: { type: 'integer' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      auth(request);
      const { keyring, master } = request.body;
      if (master) await o.appliance.initKeyring(keyring);
      else await o.appliance.followManagerRotation(keyring);
      return o.appliance.latestVersions(keyring);
    },
  );

  app.post<{ Querystring: { keyring: string } }>(
    '/v1/encrypt',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['keyring'],
          properties: { keyring: keyringName },
        },
      },
    },
    async (request, reply) => {
      auth(request);
      const input = request.body as Readable | undefined;
      if (!(input instanceof Readable)) {
        throw new BlindfoldError(
          'ERR_INVALID_ARGUMENT',
          'send the bytes as application/octet-stream',
        );
      }
      const item = await o.appliance.newItem(request.query.keyring);
      const { dek, fileNonce } = freshFileSecrets();
      const header = sealFileHeader({ ...item.fields, fileNonce }, item.kek, dek);
      zeroize(item.kek);
      void reply.header('content-type', 'application/octet-stream');
      const out = new PassThrough();
      const parallel = await parallelFor(contentLength(request.headers['content-length']));
      encryptStream(input, out, { header, dek, fileNonce, parallel })
        .catch((e) => out.destroy(e as Error))
        .finally(() => zeroize(dek));
      return reply.send(out);
    },
  );

  app.post('/v1/decrypt', async (request, reply) => {
    auth(request);
    const input = request.body as Readable | undefined;
    if (!(input instanceof Readable)) {
      throw new BlindfoldError(
        'ERR_INVALID_ARGUMENT',
        'send the Blindfold file as application/octet-stream',
      );
    }
    // Everything that can be refused is checked before the first plaintext byte is sent.
    const { header, headerBytes, payload } = await readHeader(input);
    const kek = await o.appliance.openItem(header);
    const dek = unwrapDek(headerBytes, kek);
    zeroize(kek);
    void reply.header('content-type', 'application/octet-stream');
    const out = new PassThrough();
    // A chunk that fails after streaming started aborts the response: clients must treat an
    // incomplete body as a failure (the CLI writes atomically and discards it).
    const parallel = await parallelFor(contentLength(request.headers['content-length']));
    decryptStream(payload, out, { dek, fileNonce: header.fields.fileNonce, parallel })
      .catch((e) => out.destroy(e as Error))
      .finally(() => zeroize(dek));
    return reply.send(out);
  });

  return app;
}

/** The request body's announced size, if any (chunked bodies have none). */
function contentLength(v: string | undefined): number | undefined {
  return v !== undefined && /^\d{1,15}$/.test(v) ? Number(v) : undefined;
}
