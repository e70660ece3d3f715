/**
 * The blinder's HTTPS API (SPEC.md §7.4): mutual TLS with certificates of the manager CA for the
 * chain routes, a bearer token for its own audit log, health, readiness and metrics for anyone.
 * Every route has a JSON schema on input and response.
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { toHex } from '../core/bytes.ts';
import { BlindfoldError } from '../core/errors.ts';
import { sha256 } from '../core/hash.ts';
import {
  auditEntrySchema,
  b64u,
  errorResponses,
  installErrorHandling,
  installMetrics,
  keyringName,
  Metrics,
  requireBearer,
  version,
} from '../server/common.ts';
import type { Blinder, Peer, SetupInput } from './blinder.ts';
import { type ChainEnvelopeJson, chainAnswerSchema, chainEnvelopeSchema } from './envelope.ts';
import type { BlinderStore } from './store.ts';

export interface BlinderServerOptions {
  blinder: Blinder;
  store: BlinderStore;
  caPem: string;
  tls: { key: string; cert: string };
  operatorTokenHash: Uint8Array;
  logger?: boolean | object;
  metrics?: Metrics;
}

const peers = new WeakMap<object, Peer>();

/** The verified client certificate's key and fingerprint, parsed once per TLS connection. */
function peerOf(request: FastifyRequest): Peer {
  const socket = request.raw.socket as TLSSocket;
  const hit = socket ? peers.get(socket) : undefined;
  if (hit) return hit;
  const cert =
    socket && typeof socket.getPeerCertificate === 'function' && socket.authorized
      ? socket.getPeerCertificate(false)
      : undefined;
  if (!cert?.raw) {
    throw new BlindfoldError(
      'ERR_UNAUTHENTICATED',
      'a client certificate of the manager CA is required (appliance or blinder)',
    );
  }
  const publicKey = new X509Certificate(cert.raw).publicKey;
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const peer = { fingerprint: toHex(sha256(new Uint8Array(spki))), publicKey };
  peers.set(socket, peer);
  return peer;
}

export async function buildBlinderServer(o: BlinderServerOptions): Promise<FastifyInstance> {
  const metrics = o.metrics ?? new Metrics();
  metrics.gauge('blindfold_blinder_group_operations_total', () => o.blinder.groupOps);
  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: 1 << 20,
    genReqId: () => crypto.randomUUID(),
    https: {
      key: o.tls.key,
      cert: o.tls.cert,
      ca: o.caPem,
      requestCert: true,
      rejectUnauthorized: false, // health checks and operators come without client certificates
      minVersion: 'TLSv1.2' as const,
    },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });
  installErrorHandling(app);
  installMetrics(app, metrics, 'blinder');

  const status = {
    type: 'object',
    additionalProperties: false,
    properties: {
      status: { type: 'string' },
      blinderId: { type: 'string' },
      values: { type: 'integer' },
    },
  } as const;
  app.get('/health', { schema: { response: { 200: status } } }, async () => ({ status: 'ok' }));
  app.get('/ready', { schema: { response: { 200: status, ...errorResponses } } }, async () => {
    try {
      return { status: 'ready', blinderId: o.blinder.id, values: await o.store.countValues() };
    } catch (cause) {
      throw new BlindfoldError('ERR_UNAVAILABLE', 'the blinder store is not readable', { cause });
    }
  });
  app.get('/metrics', async (_req, reply) => {
    void reply.header('content-type', 'text/plain; version=0.0.4');
    return metrics.render();
  });

  app.post<{ Body: SetupInput }>(
    '/v1/chain/setup',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: [
            'keyring',
            'managerVersion',
            'masterVersion',
            'mode',
            'scheme',
            'publicKey',
            'signature',
            'ciphertext',
          ],
          properties: {
            keyring: keyringName,
            managerVersion: version,
            masterVersion: version,
            mode: { type: 'string', enum: ['hom3', 'homN'] },
            scheme: { type: 'string', enum: ['ec-elgamal', 'paillier', 'rsa', 'gm'] },
            publicKey: b64u(4096, 1),
            signature: b64u(128, 8),
            ciphertext: b64u(70000, 1),
          },
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { ciphertext: { type: 'string' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => o.blinder.setup(peerOf(request), request.body),
  );

  app.post<{ Body: ChainEnvelopeJson }>(
    '/v1/chain/forward',
    {
      schema: {
        body: chainEnvelopeSchema,
        response: { 200: chainAnswerSchema, ...errorResponses },
      },
    },
    async (request) => o.blinder.forward(peerOf(request), request.body),
  );

  app.get<{ Querystring: { afterSeq?: string; limit?: string } }>(
    '/v1/audit',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            afterSeq: { type: 'string', pattern: '^[0-9]{1,15}$' },
            limit: { type: 'string', pattern: '^[0-9]{1,5}$' },
          },
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { entries: { type: 'array', items: auditEntrySchema } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      requireBearer(
        request,
        o.operatorTokenHash,
        'operator authentication required: send Authorization: Bearer <blinder operator token>',
      );
      const limit = request.query.limit === undefined ? 1000 : Number(request.query.limit);
      if (limit < 1 || limit > 10000) {
        throw new BlindfoldError('ERR_INVALID_ARGUMENT', 'limit must be between 1 and 10000');
      }
      return {
        entries: await o.store.listAudit({
          afterSeq: request.query.afterSeq === undefined ? 0 : Number(request.query.afterSeq),
          limit,
        }),
      };
    },
  );
  return app;
}
