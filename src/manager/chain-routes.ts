/**
 * The manager's routes for blinder chains (SPEC.md §5.4, §7.1): operators register blinders and
 * extend homN chains; blinders announce their URL and relay requests (mutual TLS with the
 * certificate the manager CA issued them); appliances and blinders read a keyring's chain.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  type ChainEnvelopeJson,
  chainAnswerSchema,
  chainEnvelopeSchema,
  decodeEnvelope,
} from '../blinder/envelope.ts';
import { fromB64u, toB64u } from '../core/bytes.ts';
import { BlindfoldError } from '../core/errors.ts';
import { b64u, errorResponses, keyringName } from '../server/common.ts';
import type { BlinderHealthMonitor } from './blinder-health.ts';
import type { Manager } from './manager.ts';

export interface ChainRouteDeps {
  manager: Manager;
  caPem: string;
  operator: (request: FastifyRequest) => Promise<string>;
  peerFingerprint: (request: FastifyRequest) => string | undefined;
  /** Probes of the blinders' /health and /ready for operators (SPEC.md §7.6). */
  health: BlinderHealthMonitor;
  /** Last relayed request per blinder id (this process only), written here on each relay. */
  lastRelay: Map<string, number>;
}

const healthOut = {
  type: 'object',
  additionalProperties: false,
  properties: {
    now: { type: 'integer' },
    blinders: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        properties: {
          id: { type: 'string' },
          name: { type: 'string' },
          url: { type: 'string' },
          identityFingerprint: { type: 'string' },
          keyrings: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              properties: { keyring: { type: 'string' }, position: { type: 'integer' } },
            },
          },
          state: { type: 'string', enum: ['ready', 'not-ready', 'down', 'unannounced'] },
          values: { type: ['integer', 'null'] },
          error: { type: ['string', 'null'] },
          checkedAt: { type: ['integer', 'null'] },
          latencyMs: { type: ['integer', 'null'] },
          lastRelayAt: { type: ['integer', 'null'] },
        },
      },
    },
  },
} as const;

const blinderId = { type: 'string', pattern: '^bl-[0-9a-f]{16}$' } as const;

const chainOut = {
  type: 'object',
  additionalProperties: false,
  properties: {
    keyring: { type: 'string' },
    mode: { type: 'string' },
    scheme: { type: 'string' },
    blinders: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        properties: {
          id: { type: 'string' },
          url: { type: 'string' },
          fingerprint: { type: 'string' },
        },
      },
    },
  },
} as const;

export function registerChainRoutes(app: FastifyInstance, d: ChainRouteDeps): void {
  const { manager } = d;

  /** A registered blinder on the other end of this mutual-TLS connection. */
  const blinder = async (request: FastifyRequest) => {
    const fpr = d.peerFingerprint(request);
    const b = fpr ? await manager.blinderByPeer(fpr) : undefined;
    if (!fpr || !b) {
      throw new BlindfoldError(
        'ERR_UNAUTHENTICATED',
        'blinder authentication required: connect with the certificate issued at registration',
      );
    }
    return { fpr, b };
  };

  app.post<{ Body: { name: string; publicKey: string; hostnames?: string[] } }>(
    '/v1/blinders',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'publicKey'],
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 64 },
            publicKey: b64u(1024, 32),
            hostnames: {
              type: 'array',
              maxItems: 16,
              items: { type: 'string', minLength: 1, maxLength: 253 },
            },
          },
        },
        response: {
          201: {
            type: 'object',
            additionalProperties: false,
            properties: {
              blinderId: { type: 'string' },
              certificatePem: { type: 'string' },
              caPem: { type: 'string' },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const actor = await d.operator(request);
      const out = await manager.registerBlinder(actor, {
        name: request.body.name,
        publicKey: fromB64u(request.body.publicKey, 'publicKey'),
        hostnames: request.body.hostnames,
      });
      return reply.status(201).send({ ...out, caPem: d.caPem });
    },
  );

  app.get(
    '/v1/blinders',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: {
              blinders: {
                type: 'array',
                items: {
                  type: 'object',
                  additionalProperties: false,
                  properties: {
                    id: { type: 'string' },
                    name: { type: 'string' },
                    identityFingerprint: { type: 'string' },
                    url: { type: 'string' },
                    createdAt: { type: 'integer' },
                    updatedAt: { type: 'integer' },
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
      await d.operator(request);
      return { blinders: manager.listBlinders() };
    },
  );

  // Operators: each blinder's state as probed now (cached a few seconds), its chains and the last
  // request relayed through it. Reads only, so not audited (SPEC.md §8 audits changes and uses).
  app.get(
    '/v1/blinders/health',
    { schema: { response: { 200: healthOut, ...errorResponses } } },
    async (request) => {
      await d.operator(request);
      return d.health.list();
    },
  );

  app.post<{ Body: { url: string } }>(
    '/v1/blinders/announce',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['url'],
          properties: { url: { type: 'string', pattern: '^https://', maxLength: 512 } },
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            properties: { blinderId: { type: 'string' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { b } = await blinder(request);
      await manager.announceBlinder(b.id, request.body.url);
      return { blinderId: b.id };
    },
  );

  app.post<{ Params: { name: string }; Body: { blinder: string } }>(
    '/v1/keyrings/:name/blinders',
    {
      schema: {
        params: { type: 'object', properties: { name: keyringName }, required: ['name'] },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['blinder'],
          properties: { blinder: blinderId },
        },
        response: { 200: chainOut, ...errorResponses },
      },
    },
    async (request) =>
      manager.addKeyringBlinder(
        await d.operator(request),
        request.params.name,
        request.body.blinder,
      ),
  );

  app.get<{ Params: { name: string } }>(
    '/v1/keyrings/:name/chain',
    {
      schema: {
        params: { type: 'object', properties: { name: keyringName }, required: ['name'] },
        response: { 200: chainOut, ...errorResponses },
      },
    },
    async (request) => {
      // Appliances and blinders: any certificate of a known member or blinder.
      const fpr = d.peerFingerprint(request);
      const known =
        fpr !== undefined &&
        ((await manager.blinderByPeer(fpr)) !== undefined ||
          (await manager.resolveAppliance(fpr))?.status === 'trusted');
      if (!known) {
        throw new BlindfoldError(
          'ERR_UNAUTHENTICATED',
          'a trusted appliance or a registered blinder certificate is required',
        );
      }
      return manager.chainOf(request.params.name);
    },
  );

  app.post<{ Body: ChainEnvelopeJson }>(
    '/v1/chain/relay',
    {
      schema: {
        body: chainEnvelopeSchema,
        response: { 200: chainAnswerSchema, ...errorResponses },
      },
    },
    async (request) => {
      const { fpr } = await blinder(request);
      const out = await manager.relay(fpr, decodeEnvelope(request.body), String(request.id));
      // The relay came from the chain's last blinder, which takes it only from its predecessor,
      // and so on back to the appliance: every blinder of the chain passed this request on.
      const at = Date.now();
      for (const id of manager.listChains().find((c) => c.keyring === request.body.keyring)
        ?.blinders ?? []) {
        d.lastRelay.set(id, at);
      }
      if (out.ticket && out.itemId) {
        return {
          itemId: toB64u(out.itemId),
          managerVersion: out.managerVersion,
          ticket: toB64u(out.ticket),
          answer: toB64u(out.answer),
        };
      }
      return { answer: toB64u(out.answer) };
    },
  );
}
