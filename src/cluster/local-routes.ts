/**
 * The cluster part of an appliance's local API (SPEC.md §7.2): `blindfold cluster invite` asks
 * the local appliance to vouch (criterion i: it sets the newcomer up), so that the manager records
 * this appliance as the voucher; `join` lets a running daemon receive a keyring's master.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { errorResponses, keyringName } from '../server/common.ts';
import type { ClusterMember } from './member.ts';

export function registerLocalClusterRoutes(
  app: FastifyInstance,
  o: { member: ClusterMember; auth: (request: FastifyRequest) => void },
): void {
  app.post<{ Body: { fingerprint?: string; ttlSeconds?: number; keyrings?: string[] } }>(
    '/v1/cluster/invite',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            fingerprint: { type: 'string', pattern: '^[0-9a-f]{64}$' },
            ttlSeconds: { type: 'integer', minimum: 60, maximum: 604800 },
            keyrings: { type: 'array', maxItems: 32, items: keyringName },
          },
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: {
              token: { type: 'string' },
              expiresAt: { type: 'integer' },
              invite: { type: 'string' },
              voucher: { type: 'string' },
              keyrings: { type: 'array', items: { type: 'string' } },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      o.auth(request);
      return o.member.invite(request.body ?? {});
    },
  );

  app.post<{ Body: { keyring: string; timeoutSeconds?: number } }>(
    '/v1/cluster/join',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['keyring'],
          properties: {
            keyring: keyringName,
            timeoutSeconds: { type: 'integer', minimum: 1, maximum: 3600 },
          },
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { transfer: { type: 'string' }, from: { type: ['string', 'null'] } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      o.auth(request);
      return o.member.join(request.body.keyring, {
        timeoutMs: (request.body.timeoutSeconds ?? 60) * 1000,
      });
    },
  );
}
