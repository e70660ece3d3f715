/**
 * The manager's cluster routes (SPEC.md §5.7, §7.1): invites by members, the credentials
 * database, membership, and the re-concealment transfer relay. Same rules as every manager
 * route: a JSON schema on input and output, binary fields base64url, operators by bearer token,
 * appliances by mutual TLS (enrolled members may use the transfer routes; the service checks
 * which need a trusted member).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { fromB64u, toB64u } from '../core/bytes.ts';
import { ERROR_CODES } from '../core/errors.ts';
import type { Manager } from '../manager/manager.ts';
import {
  applianceRecordProperties,
  b64u,
  errorResponses,
  keyringName,
  version,
} from '../server/common.ts';
import { decodeAck } from './service.ts';

export interface ClusterRouteOptions {
  manager: Manager;
  operator: (request: FastifyRequest) => Promise<string>;
  appliance: (request: FastifyRequest) => string | Promise<string>;
}

/** Largest sealed package relayed (gm ciphertexts are 64 KiB per version). */
export const MAX_PACKAGE_BYTES = 700_000;

const transferId = { type: 'string', pattern: '^tr-[0-9a-f]{24}$' } as const;
const idParams = {
  type: 'object',
  properties: { id: transferId },
  required: ['id'],
} as const;
const versionPair = {
  type: 'object',
  additionalProperties: false,
  properties: { masterVersion: { type: 'integer' }, managerVersion: { type: 'integer' } },
} as const;
const transferOut = {
  type: 'object',
  additionalProperties: false,
  properties: {
    id: { type: 'string' },
    target: { type: 'string' },
    keyring: { type: 'string' },
    voucher: { type: ['string', 'null'] },
    status: { type: 'string' },
    claimedBy: { type: ['string', 'null'] },
    versions: { type: 'array', items: versionPair },
    createdAt: { type: 'integer' },
    updatedAt: { type: 'integer' },
    package: { type: 'string' },
  },
} as const;
const okOut = {
  type: 'object',
  additionalProperties: false,
  properties: { ok: { type: 'boolean' } },
} as const;
const credentialOut = {
  type: 'object',
  additionalProperties: false,
  properties: {
    id: { type: 'string' },
    kind: { type: 'string' },
    value: { type: 'string' },
    label: { type: 'string' },
    keyrings: { type: 'array', items: { type: 'string' } },
    maxUses: { type: 'integer' },
    uses: { type: 'integer' },
    createdBy: { type: 'string' },
    createdAt: { type: 'integer' },
  },
} as const;
const keyringList = { type: 'array', maxItems: 32, items: keyringName } as const;
const errorCode = { type: 'string', enum: [...ERROR_CODES] } as const;

export function registerClusterRoutes(app: FastifyInstance, o: ClusterRouteOptions): void {
  const { manager, operator, appliance } = o;
  const cluster = manager.cluster;

  // -- vouching by a member (criterion i) ------------------------------------------------------
  app.post<{ Body: { ttlSeconds?: number; fingerprint?: string; keyrings?: string[] } }>(
    '/v1/cluster/invites',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            ttlSeconds: { type: 'integer', minimum: 60, maximum: 604800 },
            fingerprint: { type: 'string', pattern: '^[0-9a-f]{64}$' },
            keyrings: keyringList,
          },
        },
        response: {
          201: {
            type: 'object',
            additionalProperties: false,
            properties: {
              token: { type: 'string' },
              expiresAt: { type: 'integer' },
              invite: { type: 'string' },
              voucher: { type: 'string' },
              keyrings: { type: 'array', items: { type: 'string' } },
              fingerprint: { type: ['string', 'null'] },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const id = await appliance(request);
      const out = await cluster.createInvite(id, request.body ?? {});
      return reply.status(201).send(out);
    },
  );

  // -- membership (operator) -------------------------------------------------------------------
  app.get(
    '/v1/cluster/members',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: {
              members: {
                type: 'array',
                items: {
                  type: 'object',
                  additionalProperties: false,
                  properties: {
                    ...applianceRecordProperties,
                    history: {
                      type: 'array',
                      items: {
                        type: 'object',
                        additionalProperties: false,
                        properties: {
                          ts: { type: 'integer' },
                          event: { type: 'string' },
                          actor: { type: 'string' },
                          criterion: { type: ['string', 'null'] },
                          detail: { type: ['string', 'null'] },
                        },
                      },
                    },
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
      await operator(request);
      return { members: await cluster.members() };
    },
  );

  // -- the credentials database (criterion ii, operator) ---------------------------------------
  app.post<{
    Body: { kind: string; value?: string; label?: string; keyrings?: string[]; maxUses?: number };
  }>(
    '/v1/cluster/credentials',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['kind'],
          properties: {
            kind: { type: 'string', enum: ['fingerprint', 'secret', 'attestation'] },
            value: { type: 'string', minLength: 1, maxLength: 256 },
            label: { type: 'string', maxLength: 128 },
            keyrings: keyringList,
            maxUses: { type: 'integer', minimum: 1, maximum: 1000000 },
          },
        },
        response: {
          201: {
            type: 'object',
            additionalProperties: false,
            properties: { credential: credentialOut, secret: { type: 'string' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const actor = await operator(request);
      return reply.status(201).send(await cluster.addCredential(actor, request.body));
    },
  );
  app.get(
    '/v1/cluster/credentials',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { credentials: { type: 'array', items: credentialOut } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      await operator(request);
      return { credentials: await cluster.listCredentials() };
    },
  );
  app.delete<{ Params: { id: string } }>(
    '/v1/cluster/credentials/:id',
    {
      schema: {
        params: {
          type: 'object',
          properties: { id: { type: 'string', pattern: '^cr-[0-9a-f]{16}$' } },
          required: ['id'],
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { removed: { type: 'string' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      await cluster.removeCredential(await operator(request), request.params.id);
      return { removed: request.params.id };
    },
  );

  // -- transfers ---------------------------------------------------------------------------------
  app.get(
    '/v1/cluster/transfers',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { transfers: { type: 'array', items: transferOut } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      await operator(request);
      return { transfers: await cluster.listTransfers() };
    },
  );
  app.post<{ Body: { keyring: string } }>(
    '/v1/cluster/transfers',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['keyring'],
          properties: { keyring: keyringName },
        },
        response: { 201: transferOut, ...errorResponses },
      },
    },
    async (request, reply) => {
      const id = await appliance(request);
      return reply.status(201).send(await cluster.requestTransfer(id, request.body.keyring));
    },
  );
  app.get(
    '/v1/cluster/work',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: {
              serve: { type: 'array', items: transferOut },
              receive: { type: 'array', items: transferOut },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => cluster.work(await appliance(request)),
  );
  app.get<{ Params: { id: string } }>(
    '/v1/cluster/transfers/:id',
    { schema: { params: idParams, response: { 200: transferOut, ...errorResponses } } },
    async (request) => cluster.transfer(await appliance(request), request.params.id),
  );
  app.post<{ Params: { id: string } }>(
    '/v1/cluster/transfers/:id/claim',
    {
      schema: {
        params: idParams,
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: {
              ...transferOut.properties,
              mode: { type: 'string' },
              scheme: { type: 'string' },
              targetCertificatePem: { type: 'string' },
              claimTtlMs: { type: 'integer' },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => cluster.claim(await appliance(request), request.params.id),
  );
  app.post<{
    Params: { id: string };
    Body: { masterVersion: number; managerVersion: number; blinded?: string; delta?: string };
  }>(
    '/v1/cluster/transfers/:id/reencrypt',
    {
      schema: {
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['masterVersion', 'managerVersion'],
          properties: {
            masterVersion: version,
            managerVersion: version,
            blinded: b64u(70000, 1),
            delta: b64u(64, 1),
          },
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: {
              ciphertext: { type: 'string' },
              publicKey: { type: 'string' },
              signature: { type: 'string' },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const b = request.body;
      const out = await cluster.reencrypt(await appliance(request), request.params.id, {
        masterVersion: b.masterVersion,
        managerVersion: b.managerVersion,
        blinded: b.blinded === undefined ? undefined : fromB64u(b.blinded, 'blinded'),
        delta: b.delta === undefined ? undefined : fromB64u(b.delta, 'delta'),
      });
      return {
        ...(out.ciphertext ? { ciphertext: toB64u(out.ciphertext) } : {}),
        ...(out.publicKey ? { publicKey: toB64u(out.publicKey) } : {}),
        ...(out.signature ? { signature: toB64u(out.signature) } : {}),
      };
    },
  );
  app.post<{ Params: { id: string }; Body: { package: string } }>(
    '/v1/cluster/transfers/:id/package',
    {
      schema: {
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['package'],
          properties: { package: b64u(MAX_PACKAGE_BYTES, 94) },
        },
        response: { 200: okOut, ...errorResponses },
      },
    },
    async (request) => {
      await cluster.deliver(await appliance(request), request.params.id, request.body.package);
      return { ok: true };
    },
  );
  for (const which of ['release', 'reject'] as const) {
    app.post<{ Params: { id: string }; Body: { code: string } }>(
      `/v1/cluster/transfers/:id/${which}`,
      {
        schema: {
          params: idParams,
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['code'],
            properties: { code: errorCode },
          },
          response: { 200: okOut, ...errorResponses },
        },
      },
      async (request) => {
        const id = await appliance(request);
        if (which === 'release') await cluster.release(id, request.params.id, request.body.code);
        else await cluster.reject(id, request.params.id, request.body.code);
        return { ok: true };
      },
    );
  }
  app.post<{
    Params: { id: string };
    Body: {
      concealments: {
        masterVersion: number;
        managerVersion: number;
        delta?: string;
        blinded?: string;
      }[];
    };
  }>(
    '/v1/cluster/transfers/:id/ack',
    {
      schema: {
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['concealments'],
          properties: {
            concealments: {
              type: 'array',
              minItems: 1,
              maxItems: 1024,
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['masterVersion', 'managerVersion'],
                properties: {
                  masterVersion: version,
                  managerVersion: version,
                  delta: b64u(64, 1),
                  blinded: b64u(70000, 1),
                },
              },
            },
          },
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { status: { type: 'string' }, keyring: { type: 'string' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) =>
      cluster.ack(
        await appliance(request),
        request.params.id,
        decodeAck(request.body.concealments),
      ),
  );
}
